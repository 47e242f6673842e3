"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from asrtune.help_format import DefaultsHelpFormatter
from asrtune.inference import DecodingOptions


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=f"asrtune {prog}",
        description=description,
        formatter_class=DefaultsHelpFormatter,
    )


def read_hotwords(path: str) -> tuple[str, ...]:
    """The terms of a term file (first spellings), for ``--hotwords``."""
    from asrtune.terms import read_terms

    return tuple(term.term for term in read_terms(path).terms)


def _flag_type(default: Any, name: str) -> Any:
    if name == "max_new_tokens":
        return int
    if name == "hotwords":
        return read_hotwords
    return type(default) if default is not None else str


def add_decoding_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per DecodingOptions field, both spellings, defaults from the dataclass."""
    helps = DecodingOptions.field_help()
    choices = DecodingOptions.field_choices()
    for field in fields(DecodingOptions):
        spellings = dict.fromkeys((f"--{field.name.replace('_', '-')}", f"--{field.name}"))
        if field.default is False:  # a switch, off unless given: --vad
            parser.add_argument(
                *spellings, dest=field.name, action="store_true", help=helps[field.name]
            )
            continue
        parser.add_argument(
            *spellings,
            dest=field.name,
            type=_flag_type(field.default, field.name),
            default=field.default,
            choices=choices.get(field.name),
            help=helps[field.name],
        )


def decoding_options(args: argparse.Namespace) -> DecodingOptions:
    return DecodingOptions(**{name: getattr(args, name) for name in DecodingOptions.names()})


def add_model_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="Hub id, local model folder, or a LoRA output folder (its base is found "
        "from adapter_config.json)",
    )
    parser.add_argument(
        "--allow-pickle",
        "--allow_pickle",
        action="store_true",
        help="allow non-safetensors (pickle) weights; only for models you trust",
    )
