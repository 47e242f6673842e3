"""``asrtune export``: a model (LoRA adapters merged first) → CTranslate2 or ONNX.

Which formats a family supports is listed in its recipe (its ``FamilyRecipe``, looked up
by :mod:`asrtune.publish.families`); a missing one is an :class:`AsrtuneError` that says
so. Formats:

- ``ct2``: a folder that ctranslate2 and faster-whisper load (``model.bin``, ``config.json``,
  ``vocabulary.json``, ``tokenizer.json``, ``preprocessor_config.json``), converted by
  ctranslate2's own ``TransformersConverter``; optional weight quantization.
- ``onnx``: encoder and decoder ONNX graphs plus configs and processor (see
  :mod:`asrtune.publish.onnx`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asrtune.errors import AsrtuneError
from asrtune.publish.bundle import describe
from asrtune.publish.families import recipe_for

log = logging.getLogger("asrtune")

FORMATS = ("ct2", "onnx")
CT2_QUANTIZATIONS = (
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)


@contextmanager
def standalone_model(out: str | Path) -> Iterator[Path]:
    """``out`` itself, or for a LoRA adapter a merged copy that lives until the block ends."""
    info = describe(out)
    if not info.is_adapter:
        yield info.path
        return
    from asrtune.publish.merge import merge_adapter

    with tempfile.TemporaryDirectory(prefix="asrtune-merge-") as tmp:
        yield merge_adapter(info.path, Path(tmp) / "merged")


def _check_new(output: Path) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise AsrtuneError(f"{output} already exists and is not empty")


def check_export(
    out: str | Path, fmt: str, output: str | Path, quantization: str | None = None
) -> Callable[..., Any]:
    """The exporter for ``fmt``, after checking the arguments (AsrtuneError if wrong)."""
    if fmt not in FORMATS:
        raise AsrtuneError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    if quantization is not None and fmt != "ct2":
        raise AsrtuneError("--quantization applies to --format ct2 only")
    if quantization is not None and quantization not in CT2_QUANTIZATIONS:
        raise AsrtuneError(
            f"unknown quantization {quantization!r} (known: {', '.join(CT2_QUANTIZATIONS)})"
        )
    exporter = recipe_for(describe(out).family).exporter(fmt)
    _check_new(Path(output))
    return exporter


def export_model(
    out: str | Path, fmt: str, output: str | Path, quantization: str | None = None
) -> Path:
    """Export the model in ``out`` to ``output`` (new or empty) in format ``fmt``."""
    exporter = check_export(out, fmt, output, quantization)
    output = Path(output)
    with standalone_model(out) as model_dir:
        exporter(model_dir, output, quantization=quantization)
    log.info("exported %s (%s) to %s", out, fmt, output)
    return output


def write_preprocessor_config(model_dir: Path, output: Path) -> None:
    """``preprocessor_config.json``: the feature extractor settings faster-whisper reads
    (transformers 5 saves them inside processor_config.json instead)."""
    from transformers import WhisperFeatureExtractor

    WhisperFeatureExtractor.from_pretrained(str(model_dir)).to_json_file(
        str(output / "preprocessor_config.json")
    )


def whisper_to_ct2(model_dir: Path, output: Path, quantization: str | None = None) -> None:
    """Whisper → CTranslate2 with ctranslate2's converter (``quantization``: weight type)."""
    try:
        import ctranslate2
    except ImportError as exc:
        raise AsrtuneError("--format ct2 needs ctranslate2: pip install 'asrtune[export]'") from exc
    copy = [name for name in ("tokenizer.json",) if (model_dir / name).is_file()]
    if not copy:
        raise AsrtuneError(f"{model_dir} has no tokenizer.json, which faster-whisper needs")
    converter = ctranslate2.converters.TransformersConverter(str(model_dir), copy_files=copy)
    try:
        converter.convert(str(output), quantization=quantization, force=True)
    except (ValueError, RuntimeError, NotImplementedError) as exc:
        raise AsrtuneError(f"CTranslate2 conversion failed: {exc}") from exc
    write_preprocessor_config(model_dir, output)
