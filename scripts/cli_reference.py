"""Write docs/cli.md from the commands' own --help (run: python scripts/cli_reference.py).

tests/test_cli.py checks that docs/cli.md matches, so the reference cannot drift.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"
sys.path.insert(0, str(ROOT))  # document this checkout, whatever asrtune is installed


def own_train_flags() -> str:
    """asrtune's own train options (the ~120 TrainingArguments flags are summarised)."""
    from asrtune.config import (
        TRAINING_DEFAULTS,
        DataConfig,
        ModelConfig,
        RunConfig,
        resolved_defaults,
    )

    lines = ["| flag | default | meaning |", "| --- | --- | --- |"]
    for cls in (ModelConfig, DataConfig, RunConfig):
        for f in fields(cls):
            flag = f"--{f.name}` / `--{f.name.replace('_', '-')}"
            lines.append(f"| `{flag}` | `{f.default}` | {f.metadata['help']} |")
    lines += [
        "",
        "Training-argument defaults that asrtune changes (all others are transformers' own):",
        "",
        "| flag | asrtune default |",
        "| --- | --- |",
    ]
    lines += [f"| `--{k}` | `{v}` |" for k, v in TRAINING_DEFAULTS.items() if v is not None]
    lines += [f"| `--{k}` | {v} |" for k, v in resolved_defaults().items()]
    return "\n".join(lines)


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of each subcommand (``asrtune data check`` ...), in order."""
    return [
        item
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for item in action.choices.items()
    ]


def render() -> str:
    os.environ["COLUMNS"] = "100"
    from asrtune.cli import USAGE
    from asrtune.commands import COMMANDS

    parts = [
        "# CLI reference",
        "",
        "Generated from the commands' `--help` by "
        "`python scripts/cli_reference.py`; do not edit by hand.",
        "",
        "```text",
        USAGE.strip(),
        "```",
        "",
    ]
    for name, module in COMMANDS.items():
        parts += [f"## asrtune {name}", ""]
        if name == "train":
            parts += [
                "Every field of transformers' `Seq2SeqTrainingArguments` is also a flag, "
                "in both spellings (`--learning_rate` / `--learning-rate`); "
                "`asrtune train --help` lists them all. A YAML file given with "
                "`--config` sets any of them; flags override it; unknown keys fail.",
                "",
                own_train_flags(),
                "",
            ]
            continue
        parser = importlib.import_module(module).build_parser()
        parts += ["```text", parser.format_help().strip(), "```", ""]
        for sub_name, sub_parser in subcommands(parser):
            parts += [f"### asrtune {name} {sub_name}", ""]
            parts += ["```text", sub_parser.format_help().strip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    DOC.write_text(render())
    sys.stdout.write(f"wrote {DOC}\n")
