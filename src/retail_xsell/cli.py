"""`retail-xsell`: the package's command line, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retail_xsell.summary import NotBuiltError, render_summary
from retail_xsell.warehouse import database_path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["generate"]:
        # The generator owns its own argument parsing (and its error messages).
        from retail_xsell.generator.cli import main as generate_main

        return generate_main(argv[1:])

    parser = argparse.ArgumentParser(
        prog="retail-xsell",
        description="Retail cross-sell data product tools.",
        epilog="`retail-xsell generate --help` describes the raw data generator.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("generate", help="generate raw retail data (sample or scale mode)")
    summary = commands.add_parser("summary", help="summarise the last dbt build")
    summary.add_argument("--database", help="DuckDB file (default: the one profiles.yml uses)")
    args = parser.parse_args(argv)

    if args.command == "summary":
        try:
            database = database_path() if args.database is None else Path(args.database)
            print(render_summary(database))
        except (NotBuiltError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
