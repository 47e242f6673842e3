"""Voice activity detection (silero-vad): skip audio without speech and cut long audio at
pauses into chunks of at most one model window, each decoded short-form.

The silero model ships in the ``silero-vad`` wheel (``pip install 'asrtune[vad]'``); it is
loaded once per process. Audio is (n,) float32 mono at 16 kHz, as
:func:`asrtune.data.audio.load_audio` returns it; regions and chunks are ``(start, end)``
sample indices, end exclusive.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from asrtune.data.audio import SAMPLE_RATE
from asrtune.errors import AsrtuneError

T = TypeVar("T")
Span = tuple[int, int]

MAX_CHUNK_SECONDS = 30.0  # one model window: Whisper's, and Voxtral's encoder chunk
# silence kept around each speech region: silero's 30-ms default clips word onsets;
# faster-whisper's VAD keeps 400 ms
SPEECH_PAD_MS = 400
# silero cuts a region longer than one window less this many seconds at its longest pause
# (its limit counts the padding too); merge_regions cuts whatever is still too long
REGION_MARGIN_SECONDS = 1.0

_LOCK = threading.Lock()  # the silero model keeps state between calls


@functools.cache
def load_vad_model() -> Any:
    """silero-vad's TorchScript model, loaded once per process.

    Importing ``silero_vad`` sets torch to one thread; the count is put back.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    except ImportError as exc:
        raise AsrtuneError("--vad needs silero-vad: pip install 'asrtune[vad]'") from exc
    finally:
        torch.set_num_threads(threads)
    return load_silero_vad()


def speech_regions(audio: np.ndarray, max_seconds: float = float("inf")) -> list[Span]:
    """Sample spans of speech in ``audio`` ((n,) float32, 16 kHz), in order; regions over
    ``max_seconds`` are cut at their longest pause (silero's ``max_speech_duration_s``)."""
    import torch

    model = load_vad_model()  # first: it says what to install when silero-vad is missing
    from silero_vad import get_speech_timestamps

    with _LOCK:
        found = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            model,
            sampling_rate=SAMPLE_RATE,
            max_speech_duration_s=max_seconds,
            speech_pad_ms=SPEECH_PAD_MS,
        )
    return [(int(r["start"]), int(r["end"])) for r in found]


def split_span(span: Span, max_samples: int) -> list[Span]:
    """``span`` cut into consecutive pieces of at most ``max_samples`` samples."""
    start, end = span
    return [(s, min(s + max_samples, end)) for s in range(start, end, max_samples)]


def merge_regions(regions: Sequence[Span], max_samples: int) -> list[Span]:
    """Chunks to decode: consecutive speech ``regions`` merged (with the pauses between
    them) while a chunk spans at most ``max_samples``; a region longer than that is cut
    into pieces of ``max_samples``. Chunks are in order and never overlap."""
    chunks: list[Span] = []
    for region in regions:
        for start, end in split_span(region, max_samples):
            if chunks:
                start = max(start, chunks[-1][1])  # regions padded into each other
                if end <= start:
                    continue
                if end - chunks[-1][0] <= max_samples:
                    chunks[-1] = (chunks[-1][0], end)
                    continue
            chunks.append((start, end))
    return chunks


def speech_chunks(audio: np.ndarray, window_seconds: float) -> list[Span]:
    """Spans of ``audio`` to decode: its speech, in chunks of at most ``window_seconds``
    cut at pauses; empty when there is no speech."""
    max_seconds = max(window_seconds - REGION_MARGIN_SECONDS, REGION_MARGIN_SECONDS)
    regions = speech_regions(audio, max_seconds)
    return merge_regions(regions, int(window_seconds * SAMPLE_RATE))


def decode_speech(
    audios: Sequence[np.ndarray],
    window_seconds: float,
    batch_size: int,
    decode: Callable[[list[np.ndarray]], Sequence[T]],
    chunker: Callable[[np.ndarray, float], list[Span]] = speech_chunks,
) -> list[list[tuple[float, T]]]:
    """Per input, ``(offset seconds, result)`` for each of its speech chunks, in order.

    ``decode`` gets at most ``batch_size`` chunks (each within one window) at a time and
    returns one result per chunk; an input without speech gets ``[]`` and costs no call.
    """
    pieces: list[tuple[int, int]] = []  # (input index, chunk start sample)
    clips: list[np.ndarray] = []
    for index, audio in enumerate(audios):
        for start, end in chunker(audio, window_seconds):
            pieces.append((index, start))
            clips.append(audio[start:end])
    results: list[list[tuple[float, T]]] = [[] for _ in audios]
    for first in range(0, len(clips), batch_size):
        outputs = decode(clips[first : first + batch_size])
        batch = pieces[first : first + batch_size]
        for (index, start), output in zip(batch, outputs, strict=True):
            results[index].append((start / SAMPLE_RATE, output))
    return results
