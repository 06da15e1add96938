"""`python -m chronyctl6`, and the console script's entry: `chronyctl6 check ...` is first offered
to the fast path (no typer import); everything else, and what it declines, goes to the typer CLI."""

import sys


def main() -> None:
    if sys.argv[1:2] == ["check"]:
        from chronyctl6.measure.command import fast_main

        fast_main(sys.argv[2:])  # exits when it ran the check
    # The typer app itself: cli.main would offer the check to the fast path a second time.
    from chronyctl6.cli import app

    app(prog_name="chronyctl6")


if __name__ == "__main__":
    main()
