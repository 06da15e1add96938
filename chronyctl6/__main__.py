"""`python -m chronyctl6`, and the console script's entry: `chronyctl6 check ...` is first offered
to the fast path (no typer import); everything else, and what it declines, goes to the typer CLI.

The fast path is tried once: what it declines goes straight to the typer app (not cli.main,
which would offer it to the fast path a second time)."""

import sys


def main() -> None:
    if sys.argv[1:2] == ["check"]:
        from chronyctl6.measure.command import fast_main

        fast_main(sys.argv[2:])  # exits when it ran the check
        from chronyctl6.cli import app

        app(prog_name="chronyctl6")  # help, errors: click's own words
        return
    from chronyctl6.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
