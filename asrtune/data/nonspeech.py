"""Audio without speech, for training windows that teach a model to say nothing.

A fine-tuned model that only ever saw speech learns to print words on silence and noise.
Training mixes in windows whose transcript is empty, made of generated silence, noise at
several levels and mains hum (and, with ``--noise_dir``, crops of the user's own noise
recordings), and fills the gaps between packed utterances with low noise instead of
digital zeros. All audio here is float32 mono at 16 kHz, full scale 1.0; levels are RMS in
dBFS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asrtune.data.audio import SAMPLE_RATE, audio_duration, load_audio

#: Kinds of generated non-speech audio.
NONSPEECH_KINDS = ("silence", "white", "pink", "brown", "hum")
#: RMS levels (dBFS) of generated noise and hum: from barely there to loud.
NOISE_LEVELS_DB = (-70.0, -20.0)
#: RMS levels (dBFS) of the low noise between packed utterances.
GAP_NOISE_DB = (-75.0, -50.0)
#: Audio file endings looked for in ``--noise_dir``.
NOISE_FILE_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a")


def _at_level(audio: np.ndarray, level_db: float) -> np.ndarray:
    """``audio`` scaled to an RMS of ``level_db`` dBFS (silence stays silent)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if rms == 0.0:
        return audio.astype(np.float32)
    return (audio * (10 ** (level_db / 20) / rms)).astype(np.float32)


def coloured_noise(samples: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """(samples,) noise of unit-ish RMS: ``white`` (flat), ``pink`` (1/f power) or
    ``brown`` (1/f² power), shaped in the frequency domain."""
    white = rng.standard_normal(samples)
    if colour == "white" or samples < 2:
        return white.astype(np.float32)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(samples)
    freqs[0] = freqs[1]
    spectrum /= freqs ** (0.5 if colour == "pink" else 1.0)
    return np.fft.irfft(spectrum, samples).astype(np.float32)


def mains_hum(samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples,) 50- or 60-Hz hum with its first harmonics at random strengths, over a
    little white noise."""
    base = rng.choice([50.0, 60.0])
    t = np.arange(samples) / SAMPLE_RATE
    hum = sum(
        rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
        for k in range(1, 6)
    )
    return (hum + 0.05 * rng.standard_normal(samples)).astype(np.float32)


def generated_nonspeech(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """(round(seconds * 16000),) audio of ``kind`` (one of :data:`NONSPEECH_KINDS`) at a
    random level in :data:`NOISE_LEVELS_DB`; ``silence`` is digital zeros."""
    samples = max(1, round(seconds * SAMPLE_RATE))
    if kind == "silence":
        return np.zeros(samples, dtype=np.float32)
    audio = mains_hum(samples, rng) if kind == "hum" else coloured_noise(samples, kind, rng)
    return _at_level(audio, rng.uniform(*NOISE_LEVELS_DB))


def gap_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples,) low white or pink noise at a level in :data:`GAP_NOISE_DB`: the room
    between utterances, where packing used to put digital zeros."""
    colour = "pink" if rng.random() < 0.5 else "white"
    return _at_level(coloured_noise(samples, colour, rng), rng.uniform(*GAP_NOISE_DB))


def noise_files(folder: str | Path | None) -> list[str]:
    """The audio files under ``folder`` (recursively, sorted); [] for None."""
    if folder is None:
        return []
    paths = sorted(
        str(p) for p in Path(folder).expanduser().rglob("*") if p.suffix in NOISE_FILE_SUFFIXES
    )
    return paths


@dataclass(frozen=True)
class NonspeechClip:
    """One non-speech clip for a training window: generated (``kind``) or a crop of a
    noise file (``path``), ``seconds`` long, made the same way from the same ``seed``."""

    kind: str
    seconds: float
    seed: int
    path: str | None = None

    def audio(self) -> np.ndarray:
        """(round(seconds * 16000),) float32 samples."""
        rng = np.random.default_rng(self.seed)
        if self.path is None:
            return generated_nonspeech(self.kind, self.seconds, rng)
        return _crop_of_file(self.path, self.seconds, rng)


def _crop_of_file(path: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A random ``seconds`` of the file (all of it when shorter), at a random level."""
    samples = round(seconds * SAMPLE_RATE)
    audio = load_audio(path)
    if len(audio) > samples:
        start = int(rng.integers(0, len(audio) - samples + 1))
        audio = audio[start : start + samples]
    return _at_level(audio, rng.uniform(*NOISE_LEVELS_DB))


def nonspeech_clips(
    count: int, seed: int, max_seconds: float, files: list[str] | None = None
) -> list[NonspeechClip]:
    """``count`` seeded clips of 0.5 s to ``max_seconds``: every generated kind in turn,
    and, when ``files`` are given, every other clip a crop of one of them."""
    rng = np.random.default_rng([seed, 0x5E])
    clips = []
    for i in range(count):
        seconds = float(rng.uniform(0.5, max_seconds))
        clip_seed = int(rng.integers(2**31))
        if files and i % 2:
            path = files[int(rng.integers(len(files)))]
            seconds = min(seconds, audio_duration(path))
            clips.append(NonspeechClip("file", seconds, clip_seed, path))
        else:
            kind = NONSPEECH_KINDS[i % len(NONSPEECH_KINDS)]
            clips.append(NonspeechClip(kind, seconds, clip_seed))
    return clips
