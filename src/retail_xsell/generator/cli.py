"""Command line: ``retail-xsell generate sample|scale [options]``, and the same as
``scripts/generate_raw_data.py sample|scale [options]``.

Argument problems are reported as one ``error: ...`` line on stderr with exit code 2
(never a traceback), so wrappers such as make or CI can show them as they are.

The generator itself (numpy, pyarrow) is imported when a mode runs, not with the
parser, so that every other ``retail-xsell`` command starts without it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from retail_xsell import settings
from retail_xsell.commandline import CommandParser, Subcommands, UsageError, add_command

from .config import (
    FLAW_SPECS,
    FLAWS,
    SAMPLE_CUSTOMERS,
    SAMPLE_PRODUCTS,
    SAMPLE_SEED,
    SCENARIOS,
    GeneratorConfig,
    SkewedScenario,
)

__all__ = ["UsageError", "build_parser", "main", "register", "run"]

DESCRIPTION = (
    "Generate the raw customer_info, product and purchase sources of a fictional "
    "online retailer (all columns text, with documented flaws), plus a truth file. "
    "Deterministic for a given seed. See docs/generator.md."
)


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _multiple(text: str) -> float:
    value = _positive_float(text)
    if value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 1, got {text}")
    return value


def _flaw_rate(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=RATE, got {text!r}")
    if name not in FLAWS:
        raise argparse.ArgumentTypeError(f"unknown flaw name {name!r} (see --help)")
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate for {name} is not a number: {value!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"rate for {name} must be within [0, 1], got {value}")
    return name, rate


def _flaw_help() -> str:
    lines = ["flaw names (default rate; what it does):"]
    for spec in FLAW_SPECS:
        lines.append(
            f"  {spec.name} ({spec.default_rate:g} of {spec.applies_to}): {spec.description}"
        )
    return "\n".join(lines)


def _parser_options() -> dict[str, Any]:
    """What the script's parser and the subcommand's share: help text, error style."""
    return {
        "description": DESCRIPTION,
        "epilog": _flaw_help(),
        "formatter_class": argparse.RawDescriptionHelpFormatter,
        "one_line_errors": True,
    }


def build_parser() -> CommandParser:
    """The parser of ``scripts/generate_raw_data.py``: the generator on its own."""
    parser = CommandParser(prog="generate_raw_data.py", **_parser_options())
    configure(parser)
    return parser


def register(subcommands: Subcommands) -> None:
    """``retail-xsell generate``: the same options, help and errors as the script."""
    parser = add_command(
        subcommands,
        "generate",
        run,
        help="generate raw retail data (sample or scale mode)",
        **_parser_options(),
    )
    configure(parser)


def configure(parser: CommandParser) -> None:
    """Add the generator's modes (sample, scale) and their options to ``parser``."""
    sub = parser.add_subparsers(dest="mode", metavar="{sample,scale}", required=True)

    def common(p: argparse.ArgumentParser, seed_help: str) -> None:
        p.add_argument("--seed", type=int, default=SAMPLE_SEED, help=seed_help)
        p.add_argument(
            "--products",
            type=_positive_int,
            default=SAMPLE_PRODUCTS,
            help=f"catalogue size, at least 40 (default {SAMPLE_PRODUCTS})",
        )
        p.add_argument(
            "--flaw-rate",
            action="append",
            type=_flaw_rate,
            default=[],
            metavar="NAME=RATE",
            help="override a flaw rate (0 switches it off); repeatable; names in --help",
        )
        p.add_argument(
            "--scenario",
            choices=SCENARIOS,
            default="default",
            help="default: the committed sample's world; skewed: Zipf category popularity, "
            "weaker asymmetric affinities and one high-ticket category (docs/generator.md)",
        )
        p.add_argument(
            "--zipf-exponent",
            type=_positive_float,
            default=None,
            metavar="S",
            help="skewed only: popularity of rank k is proportional to 1/k^S "
            f"(default {SkewedScenario.zipf_exponent})",
        )
        p.add_argument(
            "--high-ticket-multiple",
            type=_multiple,
            default=None,
            metavar="M",
            help="skewed only: median list price of the high-ticket category over that of "
            f"the other products, above 1 (default {SkewedScenario.high_ticket_multiple:g})",
        )

    sample = sub.add_parser(
        "sample",
        help="small committed sample: three CSVs + sample_truth.json (default into seeds/)",
        description="Write the committed sample (CSV, byte-for-byte reproducible).",
        epilog=_flaw_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(sample, f"random seed (default {SAMPLE_SEED})")
    sample.add_argument(
        "--customers",
        type=_positive_int,
        default=SAMPLE_CUSTOMERS,
        help=f"number of customers (default {SAMPLE_CUSTOMERS})",
    )
    sample.add_argument("--out", type=Path, default=None, help="output folder (default seeds/)")

    scale = sub.add_parser(
        "scale",
        help="large data set: <out>/<table>/part-NNNNN.<format> + truth.json",
        description=(
            "Write a large data set with about N purchase lines (customers are derived "
            "from N with a pilot simulation; the actual count is reported)."
        ),
        epilog=_flaw_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(scale, f"random seed (default {SAMPLE_SEED})")
    scale.add_argument(
        "--purchase-lines",
        type=_positive_int,
        required=True,
        metavar="N",
        help="target number of raw purchase rows",
    )
    scale.add_argument(
        "--format",
        choices=("parquet", "csv"),
        default="parquet",
        help="file format; every column is a string either way (default parquet)",
    )
    scale.add_argument(
        "--out", type=Path, default=None, help="output folder (default data/generated/<N>)"
    )
    scale.add_argument(
        "--chunk-customers",
        type=_positive_int,
        default=GeneratorConfig.chunk_customers,
        help="customers per chunk; one purchase file per chunk (default %(default)s)",
    )
    scale.add_argument(
        "--window-end",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="last day of the simulated three years of trade (default 2025-12-31); e.g. "
        "three days ago, for data that the freshness objective sees as current",
    )
    scale.add_argument("--quiet", action="store_true", help="no progress bar")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _window(end: dt.date) -> tuple[str, str]:
    """The simulated window ending on `end`, as long as the default one (three years)."""
    start = end.replace(year=end.year - 3) + dt.timedelta(days=1)
    return f"{start:%Y-%m-%d} 00:00:00", f"{end:%Y-%m-%d} 23:59:59"


def _check_out(path: Path, *, create_parents: bool) -> Path:
    """Validate (and create) an output folder; raise UsageError on problems."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"output path is not a folder: {path}")
    parent = path.parent if path.parent != Path("") else Path(".")
    if not path.exists():
        if create_parents:
            parent.mkdir(parents=True, exist_ok=True)
        elif not parent.is_dir():
            raise UsageError(f"parent folder of the output path does not exist: {parent}")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise UsageError(f"output path is not writable: {path}")
    path.mkdir(exist_ok=True)
    return path


def _scenario(args: argparse.Namespace) -> SkewedScenario | None:
    """The scenario the options ask for; its parameters (``--zipf-exponent`` for the
    field ``zipf_exponent``, ...) need ``--scenario skewed``."""
    fields = ("zipf_exponent", "high_ticket_multiple")
    given = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    if args.scenario == "skewed":
        return SkewedScenario(**given)
    if given:
        option = "--" + next(iter(given)).replace("_", "-")
        raise UsageError(f"argument {option}: needs --scenario skewed")
    return None


def _config(
    args: argparse.Namespace,
    n_customers: int,
    *,
    chunk_customers: int | None = None,
    window_end: dt.date | None = None,
) -> GeneratorConfig:
    try:
        cfg = GeneratorConfig(seed=args.seed, n_customers=n_customers, n_products=args.products)
        scenario = _scenario(args)
        if scenario is not None:
            cfg = cfg.with_scenario(scenario)
        if chunk_customers is not None:
            cfg = replace(cfg, chunk_customers=chunk_customers)
        if window_end is not None:
            start, end = _window(window_end)
            cfg = replace(cfg, window_start=start, window_end=end)
        return cfg.with_flaw_rates(dict(args.flaw_rate))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_sample(args: argparse.Namespace) -> None:
    from .pipeline import generate, write_truth
    from .writers import SampleCsvSink

    cfg = _config(args, args.customers)
    out = _check_out(args.out or settings.seeds_dir(), create_parents=args.out is None)
    t0 = time.perf_counter()
    doc = generate(cfg, SampleCsvSink(out), mode="sample")
    write_truth(doc, out / "sample_truth.json")
    rows = doc["row_counts"]
    print(
        f"sample: {rows['customer_info']} customer_info, {rows['product']} product, "
        f"{rows['purchase']} purchase rows -> {out} ({time.perf_counter() - t0:.1f} s)"
    )


def run_scale(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .pipeline import estimate_lines_per_customer, generate, write_truth
    from .schema import TABLES
    from .writers import FolderSink

    base = _config(args, 1, chunk_customers=args.chunk_customers, window_end=args.window_end)
    default = settings.generated_data_dir() / str(args.purchase_lines)
    out = _check_out(args.out or default, create_parents=args.out is None)
    if args.products < 40:
        raise UsageError("--products must be at least 40 (one per subcategory)")
    per_customer = estimate_lines_per_customer(base)
    n_customers = max(1, round(args.purchase_lines / per_customer))
    cfg = replace(base, n_customers=n_customers)
    for table in TABLES:
        for old in (out / table).glob("part-*.*") if (out / table).is_dir() else ():
            old.unlink()
    t0 = time.perf_counter()
    with tqdm(
        total=n_customers, unit="customer", unit_scale=True, file=sys.stderr, disable=args.quiet
    ) as bar:
        doc = generate(
            cfg,
            FolderSink(out, args.format),
            mode="scale",
            truth_customers_path=out / "truth_customers.parquet",
            progress=bar.update,
        )
    doc["target_purchase_lines"] = args.purchase_lines
    doc["format"] = args.format
    write_truth(doc, out / "truth.json")
    rows = doc["row_counts"]
    print(
        f"scale: {rows['purchase']} purchase rows (target {args.purchase_lines}), "
        f"{rows['customer_info']} customer_info rows ({n_customers} customers), "
        f"{rows['product']} product rows -> {out} as {args.format} "
        f"({time.perf_counter() - t0:.1f} s)"
    )


def run(args: argparse.Namespace) -> int:
    """Generate what the parsed ``args`` ask for; returns the process exit code."""
    try:
        if args.products < 40:
            raise UsageError("--products must be at least 40 (one per subcategory)")
        if args.mode == "sample":
            run_sample(args)
        else:
            run_scale(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of scripts/generate_raw_data.py; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run(args)
