"""One command tree: each subcommand keeps its owner's options and error style."""

from __future__ import annotations

import pytest

from retail_xsell.cli import build_parser, main

SUBCOMMANDS = {
    "generate",
    "contracts",
    "build",
    "summary",
    "gate",
    "publish",
    "publications",
    "backtest",
    "serve",
    "token",
    "query",
    "audit",
}


def test_every_subcommand_is_in_the_one_tree():
    (subcommands,) = [action for action in build_parser()._actions if action.dest == "command"]
    assert set(subcommands.choices) == SUBCOMMANDS


def test_generate_reports_a_bad_argument_in_one_line(capsys):
    assert main(["generate", "scale", "--purchase-lines", "0"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: argument --purchase-lines: must be a positive integer, got 0"
    ]
    assert main(["generate"]) == 2
    assert capsys.readouterr().err.startswith("error: the following arguments are required")


def test_other_commands_report_a_bad_argument_as_argparse_does(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["gate", "--new-baseline"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: retail-xsell gate")
    assert "retail-xsell gate: error: argument --new-baseline: expected one argument" in err


def test_an_unknown_command_names_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        main(["sevre"])
    err = capsys.readouterr().err
    assert "invalid choice: 'sevre'" in err and "generate" in err
