"""Batched inference shared by ``asrtune eval``, ``asrtune transcribe``, training-time
evaluation and the UI.

Inputs are sorted by length and grouped by language so each batch pads little and decodes
with one prompt; results come back in the caller's order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from asrtune.data.audio import SAMPLE_RATE, audio_duration, load_audio
from asrtune.errors import AsrtuneError
from asrtune.models import PRECISIONS, LoadedModel, Transcript
from asrtune.transcripts import (
    FileTranscript,
    Segment,
    join_texts,
    shift_segments,
    tidy_segments,
)

T = TypeVar("T")


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode. Every field is also a CLI flag (``--batch-size`` ...)."""

    language: str | None = None  # default language for inputs that have none
    task: str = "transcribe"  # "transcribe" or "translate"
    batch_size: int = 16
    num_beams: int = 1
    max_new_tokens: int | None = None  # None: the model's generation config decides
    precision: str = "auto"  # see models.inference_precision
    vad: bool = False  # decode only speech found by silero-vad, see asrtune.vad
    hotwords: tuple[str, ...] = ()  # terms decoding is biased toward (Capabilities.hotwords)

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
            "vad": "voice activity detection (silero-vad, pip install 'asrtune[vad]'): audio "
            "without speech gives an empty text without running the model, speech is "
            "decoded in chunks of at most 30 s cut at pauses (default: off)",
            "hotwords": "term file (as for --terms; the first spelling of each line): bias "
            "decoding toward these terms. Whisper: the terms as the decoder's previous-text "
            "prompt; audio LLMs: as context in the prompt, where the family supports it "
            "(default: none)",
        }

    @classmethod
    def field_choices(cls) -> dict[str, tuple[str, ...]]:
        return {"task": ("transcribe", "translate"), "precision": PRECISIONS}

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


DEFAULT_DECODING = DecodingOptions()


def decoding_batches(
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


def _decode_batches(
    loaded: LoadedModel,
    seconds: Sequence[float],
    load: Callable[[int], np.ndarray],
    options: DecodingOptions,
    languages: Sequence[str | None] | None,
    progress: bool | str,
    decode: Callable[[list[np.ndarray], str | None], Sequence[T]],
) -> list[T]:
    """``decode(audios, language)`` over the batches of :func:`decoding_batches`; one result per
    input, in input order. Audio is loaded (``load(i)``) only when its batch runs. A
    ``progress`` string is the progress bar's label (True: "transcribing")."""
    languages = [lang or options.language for lang in (languages or [None] * len(seconds))]
    results: list[Any] = [None] * len(seconds)
    label = progress if isinstance(progress, str) else "transcribing"
    bar = tqdm(total=len(seconds), desc=label, unit="utt", disable=not progress)
    window = loaded.adapter.limits(loaded).max_seconds
    for batch in decoding_batches(seconds, languages, options.batch_size, window):
        outputs = decode([load(i) for i in batch], languages[batch[0]])
        for i, output in zip(batch, outputs, strict=True):
            results[i] = output
        bar.update(len(batch))
    bar.close()
    return results


def check_hotwords(loaded: LoadedModel, options: DecodingOptions) -> None:
    """A one-line :class:`AsrtuneError` when ``options`` has hotwords and the model's family
    cannot boost them (``Capabilities.hotwords``)."""
    if options.hotwords and not loaded.capabilities.hotwords:
        raise AsrtuneError(f"--hotwords: {loaded.family} models cannot boost hotwords")


def _generator(
    loaded: LoadedModel, language: str | None, options: DecodingOptions, timed: bool
) -> Callable[[list[np.ndarray]], Sequence[Any]]:
    """``audios → outputs`` with the adapter's ``generate`` (texts) or, when ``timed``,
    its ``generate_segments`` (segment lists); with hotwords, ``generate_boosted``."""
    generate = loaded.adapter.generate_segments if timed else loaded.adapter.generate
    boost: dict[str, Any] = {}
    if options.hotwords:
        check_hotwords(loaded, options)
        if timed:
            raise AsrtuneError("--hotwords gives texts only: leave out timestamps (srt/vtt)")
        generate, boost = loaded.adapter.generate_boosted, {"hotwords": list(options.hotwords)}
    return functools.partial(
        generate,
        loaded,
        **boost,
        language=language,
        task=options.task,
        num_beams=options.num_beams,
        max_new_tokens=options.max_new_tokens,
        precision=options.precision,
    )


def _vad_window(loaded: LoadedModel) -> float:
    """Longest VAD chunk in seconds: one model window (Whisper's 30 s, Voxtral's chunk)."""
    from asrtune.vad import MAX_CHUNK_SECONDS

    return min(loaded.adapter.limits(loaded).max_seconds, MAX_CHUNK_SECONDS)


def _texts(
    loaded: LoadedModel, audios: list[np.ndarray], language: str | None, options: DecodingOptions
) -> Sequence[str]:
    """One batch's texts; with ``options.vad`` only speech is decoded, chunk by chunk."""
    generate = _generator(loaded, language, options, timed=False)
    if not options.vad:
        return generate(audios)
    from asrtune.vad import decode_speech

    per_input = decode_speech(audios, _vad_window(loaded), options.batch_size, generate)
    return [
        Transcript(
            join_texts([text for _, text in chunks]),
            any(getattr(text, "capped", False) for _, text in chunks),
        )
        for chunks in per_input
    ]


def _segments(
    loaded: LoadedModel, audios: list[np.ndarray], language: str | None, options: DecodingOptions
) -> list[list[Segment]]:
    """One batch's segments (seconds from each input's start); with ``options.vad`` each
    speech chunk is decoded alone and its segments moved by the chunk's offset."""
    generate = _generator(loaded, language, options, timed=True)
    if not options.vad:
        return generate(audios)
    from asrtune.vad import decode_speech

    per_input = decode_speech(audios, _vad_window(loaded), options.batch_size, generate)
    return [
        tidy_segments(
            [
                (s.start, s.end, s.text)
                for offset, found in chunks
                for s in shift_segments(found, offset)
            ],
            len(audio) / SAMPLE_RATE,
        )
        for chunks, audio in zip(per_input, audios, strict=True)
    ]


def transcribe_lazily(
    loaded: LoadedModel,
    seconds: Sequence[float],
    load: Callable[[int], np.ndarray],
    options: DecodingOptions = DEFAULT_DECODING,
    languages: Sequence[str | None] | None = None,
    progress: bool | str = True,
) -> list[str]:
    """Transcribe inputs known by their durations (``seconds``) and decoded by ``load(i)``
    only when their batch runs, so memory holds one batch of audio at a time."""
    check_hotwords(loaded, options)

    def decode(audios: list[np.ndarray], language: str | None) -> Sequence[str]:
        return _texts(loaded, audios, language, options)

    return _decode_batches(loaded, seconds, load, options, languages, progress, decode)


def gives_timestamps(loaded: LoadedModel) -> bool:
    """Whether the model's family decodes segment times (its declared capability)."""
    return loaded.capabilities.timestamps


def segment_lazily(
    loaded: LoadedModel,
    seconds: Sequence[float],
    load: Callable[[int], np.ndarray],
    options: DecodingOptions = DEFAULT_DECODING,
    languages: Sequence[str | None] | None = None,
    progress: bool = True,
) -> list[list[Segment]]:
    """Like :func:`transcribe_lazily`, but each input's timed segments (seconds from its
    start, in order, within its duration). Raises for a family without timestamps."""
    if not gives_timestamps(loaded):
        raise AsrtuneError(f"{loaded.family} models give no timestamps (srt/vtt need them)")
    if options.hotwords:
        raise AsrtuneError("--hotwords gives texts only: leave out timestamps (srt/vtt)")

    def decode(audios: list[np.ndarray], language: str | None) -> list[list[Segment]]:
        return _segments(loaded, audios, language, options)

    return _decode_batches(loaded, seconds, load, options, languages, progress, decode)


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


def file_transcripts(
    loaded: LoadedModel,
    paths: Sequence[str],
    options: DecodingOptions = DEFAULT_DECODING,
    timestamps: bool = True,
    progress: bool = True,
) -> list[FileTranscript]:
    """Each file's text and duration and, with ``timestamps``, its segments (the text is
    then the segments' texts joined). Raises for ``timestamps`` on a family without them."""
    seconds = [audio_duration(p) for p in paths]
    lazy = segment_lazily if timestamps else transcribe_lazily
    outputs = lazy(loaded, seconds, lambda i: load_audio(paths[i]), options, progress=progress)
    if not timestamps:
        rows = zip(paths, outputs, seconds, strict=True)
        return [FileTranscript(str(p), text, s) for p, text, s in rows]
    rows = zip(paths, outputs, seconds, strict=True)
    return [FileTranscript(str(p), join_texts([g.text for g in f]), s, f) for p, f, s in rows]
