"""``asrtune <command>``: the single entry point. Commands live in asrtune/commands/."""

from __future__ import annotations

import importlib
import logging
import os
import sys

from asrtune.commands import COMMANDS
from asrtune.errors import AsrtuneError

USAGE = """usage: asrtune <command> [options]

commands:
  train       fine-tune (full or --lora) on manifests, Hub datasets or Granary; WER each epoch
  eval        WER/CER of a model on a manifest, with a per-utterance report
  transcribe  print the text of audio files, or srt/vtt/json with timestamps
  import-ct2  convert a CTranslate2 / faster-whisper model to transformers
  make-tiny   write a tiny random model of any family (tests, smoke runs)
  families    list the model families with their kind and capabilities
  data        check (every row, with reasons), synth, split or push a dataset
  merge       merge a LoRA adapter into a standalone model
  export      export a model to CTranslate2 (faster-whisper) or ONNX
  push        upload a model + model card + eval report to the Hub, one commit
  demo-app    write a Gradio demo app (a Space) for a fine-tuned model
  bench       reference recipe vs asrtune: throughput and time to the same WER
  demo        offline demo: tiny.en + synthetic speech, before/after WER
  ui          web UI: record data, train with live progress, evaluate, try, publish

'asrtune <command> --help' explains every flag and its default.
"""


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"asrtune: error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    _setup_logging()
    try:
        code = importlib.import_module(COMMANDS[command]).run(rest)
    except AsrtuneError as exc:
        print(f"asrtune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("asrtune: interrupted", file=sys.stderr)
        return 130
    _leave_launched_run()
    return code


def _leave_launched_run() -> None:
    """Under torchrun / accelerate launch: every process done before any exits (a command
    that never imported torch joined no process group)."""
    if "torch.distributed" in sys.modules:
        from asrtune.processes import leave_launched_run

        leave_launched_run()


if __name__ == "__main__":
    sys.exit(main())
