"""`retail-xsell build`: dbt build into a fresh file, then swap it onto the working database.

DuckDB reuses the blocks a file frees but seldom gives them back to the file system,
and a build into an existing working database writes each new table while the old
build's tables still fill the file, so the file ends larger than a fresh build: on the
committed sample 26.0 MB after a first build and 37.0 MB after the next, at 10M purchase
lines 2.79 GB and then 5.61 GB (docs/benchmarks.md, "Rebuilding the working database").
So ``make build`` does not build in place: it builds the whole project into
``<working>.building`` (removed first, with any write-ahead log of it), then moves that
file onto the working database with ``os.replace``, atomic on POSIX.

The rule for the swap, because the gate must see what the build did:

- dbt finished (exit code 0, or 1 for failed tests or models): swap. A failed test's
  stored failures and a failed model's absence are in the new file, where the gate
  looks for them; the old build would hide them.
- dbt could not run (exit code 2: bad vars, a compile error, a missing input file
  before anything was built), was interrupted or killed: keep the old working database
  as it was and remove the half-built file.

Only whole-project builds go through here: a fresh file has no upstream tables, so
``--select``/``--exclude`` are refused with a pointer to plain ``dbt build``, which
rebuilds some nodes in place. The working database's stale write-ahead log (from an
interrupted write to the old file) is removed before the swap: DuckDB would replay it
against the new file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from retail_xsell import daily_load, settings
from retail_xsell.commandline import Subcommands, UsageError, add_command, shown
from retail_xsell.settings import building_path  # noqa: F401 (the swap's file, for callers)

#: dbt's exit codes (dbt.cli.exceptions): 0 success, 1 a node failed, 2 dbt failed.
DBT_NODE_FAILURE = 1
#: The shell's exit code for a command ended by SIGINT (128 + 2).
INTERRUPTED = 130
#: dbt options that build part of the project; a fresh file has nothing upstream.
SELECTION_OPTIONS = ("-s", "--select", "--exclude", "--selector", "-m", "--models")


@dataclass(frozen=True)
class BuildResult:
    """What a build did: dbt's exit code, and whether the working database is new."""

    returncode: int
    swapped: bool
    working: Path


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def selection_option(dbt_args: Sequence[str]) -> str | None:
    """The first option of ``dbt_args`` that selects part of the project, if any."""
    for argument in dbt_args:
        name = argument.split("=", 1)[0]
        if name in SELECTION_OPTIONS:
            return name
    return None


def dbt_executable() -> str:
    """The dbt of this environment (the virtual environment make installs), else PATH's."""
    beside = Path(sys.executable).with_name("dbt")
    if beside.is_file():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise UsageError("dbt not found: run make venv, or put dbt on PATH")
    return found


def build_and_swap(
    working: Path, command: Sequence[str], before_swap: Callable[[Path], None] | None = None
) -> BuildResult:
    """Run ``command`` (dbt build ...) with RETAIL_XSELL_DUCKDB_PATH at a fresh file
    beside ``working``, then swap it onto ``working`` by the rule of the module doc.
    ``before_swap`` gets the finished file first (to record what the build read)."""
    working = working.absolute()
    building = settings.building_path(working)
    working.parent.mkdir(parents=True, exist_ok=True)
    _remove(building, settings.wal_path(building))  # a crashed build's leftovers
    env = {**os.environ, settings.DATABASE_ENV: str(building)}
    env.pop(daily_load.DAILY_FILES_ENV, None)  # a full build reads every file
    try:
        returncode = subprocess.run(list(command), env=env, check=False).returncode
    except BaseException:  # Ctrl-C reaches dbt too; keep the old build as it was
        _remove(building, settings.wal_path(building))
        raise
    finished = returncode in (0, DBT_NODE_FAILURE)
    # dbt checkpoints and closes its file at the end; a log left beside it means it did
    # not finish writing, and the file without its log is not the build.
    if not finished or not building.is_file() or settings.wal_path(building).exists():
        _remove(building, settings.wal_path(building))
        return BuildResult(returncode, swapped=False, working=working)
    if before_swap is not None:
        try:
            before_swap(building)
        except BaseException:
            _remove(building, settings.wal_path(building))
            raise
    _remove(settings.wal_path(working))
    os.replace(building, working)
    return BuildResult(returncode, swapped=True, working=working)


# --- the command ---------------------------------------------------------------------


def register(subcommands: Subcommands) -> None:
    parser = add_command(
        subcommands,
        "build",
        _build,
        help="dbt build the whole project into a fresh file and swap it onto the working "
        "database (make build)",
        description="Run `dbt build` into <working>.building, then replace the working "
        "database with it when dbt finished (even with failed tests, which the gate "
        "reads); keep the old one when dbt could not run or was interrupted. Arguments "
        "after -- go to dbt build, e.g. retail-xsell build -- --vars '{...}'.",
    )
    parser.add_argument(
        "--database", help="working DuckDB file (default: the one profiles.yml uses)"
    )
    parser.add_argument(
        "--daily",
        action="store_true",
        help="add the purchase files that are new since the last build to it, when that "
        "gives what a full build would (as_of_date pinned in --vars); else build in full, "
        "saying why (docs/daily_loads.md)",
    )
    parser.add_argument("dbt_args", nargs=argparse.REMAINDER, help="arguments for dbt build")


def _build(args: argparse.Namespace) -> int:
    dbt_args = list(args.dbt_args)
    if dbt_args[:1] == ["--"]:
        dbt_args = dbt_args[1:]
    option = selection_option(dbt_args)
    if option is not None:
        raise UsageError(
            f"retail-xsell build rebuilds the whole project into a fresh file, so {option} "
            "has nothing upstream to build on; to rebuild some nodes in place, run "
            "dbt build --select ... directly"
        )
    try:
        working = settings.database_path() if args.database is None else Path(args.database)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    dbt_vars = daily_load.parse_vars(dbt_args)
    if args.daily:
        try:
            returncode, done = daily_load.run_daily_load(working, dbt_executable(), dbt_args)
        except daily_load.FullBuildRequiredError as reason:
            print(f"retail-xsell build --daily: a full build, because {reason}", file=sys.stderr)
        except KeyboardInterrupt:
            print(
                f"retail-xsell build --daily: interrupted; {shown(working)} may hold part of "
                "the load, and its build record says so: the gate will not publish it and "
                "the next build is a full one",
                file=sys.stderr,
            )
            return INTERRUPTED
        else:
            print(f"retail-xsell build --daily: {done}")
            return returncode

    # The files as they are before dbt starts: one that lands during the build is new to
    # the next daily load, never recorded as read when it was not.
    files = daily_load.raw_files(dbt_vars)

    def record(building: Path) -> None:
        try:
            daily_load.record_build_inputs(
                building, dbt_vars, files, daily_load.target_path(dbt_args)
            )
        except (OSError, ValueError, KeyError) as exc:  # dbt's artifacts are not readable
            print(
                f"retail-xsell build: could not record what the build read ({exc}); the next "
                "daily load will be a full build",
                file=sys.stderr,
            )

    try:
        result = build_and_swap(working, [dbt_executable(), "build", *dbt_args], record)
    except KeyboardInterrupt:  # Ctrl-C: dbt got it too; the half-built file is gone
        print(f"retail-xsell build: interrupted; {shown(working)} is unchanged", file=sys.stderr)
        return INTERRUPTED
    if result.swapped:
        print(f"retail-xsell build: the new build is now {shown(result.working)}")
    else:
        print(
            f"retail-xsell build: dbt exited with {result.returncode} before the build "
            f"finished; {shown(result.working)} is unchanged",
            file=sys.stderr,
        )
    return result.returncode
