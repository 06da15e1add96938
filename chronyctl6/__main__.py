from chronyctl6.cli import main

main()
