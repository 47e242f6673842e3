"""Batched inference shared by ``asrtune eval``, ``asrtune transcribe``, training-time
evaluation and the UI.

Inputs are sorted by length and grouped by language so each batch pads little and decodes
with one prompt; results come back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
from tqdm.auto import tqdm

from asrtune.data.audio import audio_duration, load_audio
from asrtune.models import PRECISIONS, LoadedModel


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode. Every field is also a CLI flag (``--batch-size`` ...)."""

    language: str | None = None  # default language for inputs that have none
    task: str = "transcribe"  # "transcribe" or "translate"
    batch_size: int = 16
    num_beams: int = 1
    max_new_tokens: int | None = None  # None: the model's generation config decides
    precision: str = "auto"  # see models.inference_precision

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {
            "language": "language code for inputs without one (default: per row / auto)",
            "task": "transcribe or translate (default: transcribe)",
            "batch_size": "utterances per generate() call (default: 16)",
            "num_beams": "beam width; 1 is greedy (default: 1)",
            "max_new_tokens": "cap on generated tokens (default: 32 + 25 per second of audio)",
            "precision": "auto: bf16 autocast on a float32 model where the device computes "
            "bf16 natively (CUDA, CPUs with AVX512-BF16/AMX), else fp32; or fp32 / bf16 "
            "(default: auto)",
        }

    @classmethod
    def field_choices(cls) -> dict[str, tuple[str, ...]]:
        return {"task": ("transcribe", "translate"), "precision": PRECISIONS}

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


DEFAULT_DECODING = DecodingOptions()


def _batches(
    seconds: Sequence[float],
    languages: Sequence[str | None],
    batch_size: int,
    window_seconds: float,
) -> list[list[int]]:
    """Index batches, longest first, each of one language and either all within one
    model window or all longer: a batch holding a long input is decoded long-form
    (with timestamps), which would change the short inputs' hypotheses."""

    def kind(i: int) -> tuple[str, bool]:
        return languages[i] or "", seconds[i] > window_seconds

    order = sorted(range(len(seconds)), key=lambda i: (kind(i), -seconds[i]))
    batches: list[list[int]] = []
    for index in order:
        if batches and len(batches[-1]) < batch_size and kind(batches[-1][0]) == kind(index):
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def transcribe_lazily(
    loaded: LoadedModel,
    seconds: Sequence[float],
    load: Callable[[int], np.ndarray],
    options: DecodingOptions = DEFAULT_DECODING,
    languages: Sequence[str | None] | None = None,
    progress: bool = True,
) -> list[str]:
    """Transcribe inputs known by their durations (``seconds``) and decoded by ``load(i)``
    only when their batch runs, so memory holds one batch of audio at a time."""
    languages = [lang or options.language for lang in (languages or [None] * len(seconds))]
    texts: list[str] = [""] * len(seconds)
    bar = tqdm(total=len(seconds), desc="transcribing", unit="utt", disable=not progress)
    window = loaded.adapter.limits(loaded).max_seconds
    for batch in _batches(seconds, languages, options.batch_size, window):
        outputs = loaded.adapter.generate(
            loaded,
            [load(i) for i in batch],
            language=languages[batch[0]],
            task=options.task,
            num_beams=options.num_beams,
            max_new_tokens=options.max_new_tokens,
            precision=options.precision,
        )
        for i, text in zip(batch, outputs, strict=True):
            texts[i] = text
        bar.update(len(batch))
    bar.close()
    return texts


def transcribe_files(
    loaded: LoadedModel,
    paths: Sequence[str],
    options: DecodingOptions = DEFAULT_DECODING,
    progress: bool = True,
) -> list[str]:
    """Decode and transcribe audio files of any length (long files go through long-form)."""
    seconds = [audio_duration(p) for p in paths]
    return transcribe_lazily(
        loaded, seconds, lambda i: load_audio(paths[i]), options, progress=progress
    )
