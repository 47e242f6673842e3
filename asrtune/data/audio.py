"""Audio decoding: any file soundfile reads → 16 kHz mono float32.

No torchcodec: soundfile (libsndfile) decodes wav/flac/ogg/opus/mp3, soxr resamples,
and channels are averaged here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from asrtune.errors import AsrtuneError

SAMPLE_RATE = 16000  # Hz, what every model family expects


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) → (n,) by averaging channels."""
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def resample(samples: np.ndarray, orig_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n,) float32 at ``orig_rate`` Hz → (m,) float32 at ``target_rate`` Hz (soxr HQ)."""
    if orig_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, orig_rate, target_rate).astype(np.float32, copy=False)


def consecutive_pieces(audio: np.ndarray, seconds: float) -> list[np.ndarray]:
    """``audio`` (n,) at 16 kHz as float32, cut into consecutive pieces of at most
    ``seconds`` (one piece when it fits)."""
    audio = np.asarray(audio, dtype=np.float32)
    size = int(seconds * SAMPLE_RATE)
    if len(audio) <= size:
        return [audio]
    return [audio[start : start + size] for start in range(0, len(audio), size)]


def load_audio(
    path: str | Path, sample_rate: int = SAMPLE_RATE, data: bytes | None = None
) -> np.ndarray:
    """Decode ``path`` (or the encoded ``data`` it names) to a (n_samples,) float32 array
    in [-1, 1] at ``sample_rate`` Hz, mono."""
    source = io.BytesIO(data) if data is not None else str(path)
    try:
        samples, rate = sf.read(source, dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for missing/corrupt files
        raise AsrtuneError(f"cannot read audio {path}: {exc}") from exc
    return resample(to_mono(samples), rate, sample_rate)


def load_row_audio(row: Any, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Audio of a manifest row: from its bytes when it carries them, else from its file."""
    return load_audio(row.audio_path, sample_rate, getattr(row, "audio_bytes", None))


def audio_duration(path: str | Path, data: bytes | None = None) -> float:
    """Duration of an audio file (or encoded ``data``) in seconds, from its header."""
    try:
        info = sf.info(io.BytesIO(data) if data is not None else str(path))
    except Exception as exc:
        raise AsrtuneError(f"cannot read audio {path}: {exc}") from exc
    return info.frames / info.samplerate


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write (n,) float32 samples as 16-bit PCM (wav/flac by extension)."""
    sf.write(str(path), samples, sample_rate, subtype="PCM_16")
