"""What every subcommand of ``retail-xsell`` shares: the parser class and how a
subcommand plugs into the tree.

A subcommand is registered by a function of the module that owns it,
``register(subcommands)``, which adds its parser (options, help) with
:func:`add_command` and names its handler, ``handler(args) -> exit code``.
``retail_xsell.cli`` calls one ``register`` per subcommand and runs the handler of the
one given.

Errors keep each command's own style: by default argparse's (usage, then ``prog:
error: ...``, exit 2); a command created with ``one_line_errors=True`` (and every parser
below it) reports a bad argument as a single ``error: ...`` line with exit 2, for
wrappers such as make or CI to show as it is.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from retail_xsell import settings

#: What a subcommand runs with its parsed arguments; returns the exit code.
Handler = Callable[[argparse.Namespace], int]
#: The ``subcommands`` object a register function adds its parser to.
Subcommands: TypeAlias = "argparse._SubParsersAction[CommandParser]"


class UsageError(Exception):
    """Bad input to a command, reported as one ``error: ...`` line with exit code 2: a
    bad argument of a one-line-error command, or a bad setting a handler found."""


class CommandParser(argparse.ArgumentParser):
    """argparse, with a per-command error style inherited by every parser below it."""

    def __init__(self, *args: Any, one_line_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.one_line_errors = one_line_errors

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault(
            "parser_class",
            functools.partial(CommandParser, one_line_errors=self.one_line_errors),
        )
        return super().add_subparsers(**kwargs)

    def error(self, message: str) -> NoReturn:
        if self.one_line_errors:
            raise UsageError(message)
        super().error(message)


def add_command(
    subcommands: Subcommands,
    name: str,
    handler: Handler,
    **kwargs: Any,
) -> CommandParser:
    """Add subcommand ``name`` running ``handler``; ``kwargs`` go to its parser (help,
    description, one_line_errors, ...). Returns the parser, for its options."""
    parser = subcommands.add_parser(name, **kwargs)
    parser.set_defaults(handler=handler)
    return parser


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- the options of the commands that read a build ----------------------------------

PUBLISHED_HELP = (
    "published DuckDB file (default: RETAIL_XSELL_PUBLISHED_PATH or "
    "build/published/retail_xsell.duckdb)"
)


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """--database, --published, --report-dir, --target-path: which build, which
    publication (``gate`` and ``publish``)."""
    parser.add_argument(
        "--database", help="working DuckDB file (default: the one profiles.yml uses)"
    )
    parser.add_argument("--published", help=PUBLISHED_HELP)
    parser.add_argument(
        "--report-dir", help="where report.json/.md live (default: build/slo/<database>)"
    )
    parser.add_argument(
        "--target-path",
        help="dbt artifacts folder (default: target; publish: the copy the gate kept)",
    )


@dataclass(frozen=True)
class BuildLocations:
    """Where the options of :func:`add_build_options` point, defaults resolved."""

    database: Path
    published: Path
    report_dir: Path


def build_locations(args: argparse.Namespace) -> BuildLocations:
    """Resolve the options of :func:`add_build_options` (UsageError: a bad
    RETAIL_XSELL_TARGET when --database is not given)."""
    try:
        database = settings.database_path() if args.database is None else Path(args.database)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return BuildLocations(
        database=database,
        published=Path(args.published) if args.published else settings.published_path(),
        report_dir=Path(args.report_dir) if args.report_dir else settings.report_dir(database),
    )
