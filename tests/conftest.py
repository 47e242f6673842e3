"""Shared fixtures: tiny random Whisper models built in code and audio generated here."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from asrtune.models.tiny import SAMPLE_SENTENCES, make_tiny_whisper

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ASRTUNE_CACHE", "off")  # tests of the cache turn it on themselves
# trackio reads TRACKIO_DIR once, at import: point it at a scratch folder before any test can
if "TRACKIO_DIR" not in os.environ:
    _TRACKIO_SCRATCH = tempfile.mkdtemp(prefix="asrtune-tests-trackio-")
    os.environ["TRACKIO_DIR"] = _TRACKIO_SCRATCH
    atexit.register(shutil.rmtree, _TRACKIO_SCRATCH, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """With ASRTUNE_FAIL_ON_SKIP=1 (.ci/run sets it) a skipped test fails: everything the
    tests need is in the dev extra, so a skip there means a missing dependency."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("ASRTUNE_FAIL_ON_SKIP") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped in CI: {report.longrepr}"


#: Flags for short training runs in tests: no tracking, no checkpoints, no warmup.
FAST_TRAINING = [
    "--report_to",
    "none",
    "--per_device_train_batch_size",
    "4",
    "--logging_steps",
    "1",
    "--save_strategy",
    "no",
    "--warmup_steps",
    "0",
]


def tone(seconds: float, freq: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    """A (n,) or (n, channels) float32 sine with a little noise, amplitude ~0.3."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(int(freq))
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    wave = wave.astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def make_talkative(model: torch.nn.Module, scale: float = 0.3, seed: int = 1) -> None:
    """Replace every matrix of ``model`` with N(0, scale²) noise (seeded): a tiny random
    model then emits tokens, timestamp pairs included, for any audio."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)


def write_dataset(
    folder: Path, n: int, language: str | None = "en", seconds: float = 1.5, step: float = 0.1
) -> Path:
    """n wav clips with sample sentences, clip i ``seconds + step * i`` long; returns a JSONL
    manifest with relative paths."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audio").mkdir(exist_ok=True)
    sentences = SAMPLE_SENTENCES["en"]
    manifest = folder / "manifest.jsonl"
    with open(manifest, "w", encoding="utf-8") as handle:
        for i in range(n):
            path = folder / "audio" / f"clip{i}.wav"
            sf.write(path, tone(seconds + step * i, 200 + 40 * i), 16000)
            row = {"id": f"u{i}", "audio_path": f"audio/clip{i}.wav", "text": sentences[i % 5]}
            if language:
                row["language"] = language
            handle.write(json.dumps(row) + "\n")
    return manifest


def write_long_segments(folder: Path, long: int = 10) -> Path:
    """``long`` clips of 16-20 s (no two share a 30-s window) and three short ones (5.1,
    2.1 and 3.3 s): few windows hold two utterances, and how many changes with each
    repacking. Returns a JSONL manifest (language "en")."""
    folder.mkdir(parents=True, exist_ok=True)
    seconds = [16 + 4 * ((i * 7919) % 100) / 100 for i in range(long)] + [5.1, 2.1, 3.3]
    manifest = folder / "manifest.jsonl"
    with open(manifest, "w", encoding="utf-8") as handle:
        for i, length in enumerate(seconds):
            sf.write(folder / f"long{i}.wav", tone(length, 200 + 30 * i), 16000)
            row = {"id": f"l{i}", "audio_path": f"long{i}.wav", "text": "hello world"}
            handle.write(json.dumps({**row, "language": "en"}) + "\n")
    return manifest


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multilingual tiny Whisper folder (d_model 16, 1+1 layers, real 30-s input)."""
    return make_tiny_whisper(tmp_path_factory.mktemp("models") / "tiny-multi", multilingual=True)


@pytest.fixture(scope="session")
def tiny_whisper_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_whisper(tmp_path_factory.mktemp("models") / "tiny-en", multilingual=False)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of 8 short English clips (read-only: copy before changing)."""
    return write_dataset(tmp_path_factory.mktemp("data"), 8)


@pytest.fixture(scope="session")
def talkative_whisper(tiny_whisper: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Whisper with large random weights: it says something for every clip."""
    from asrtune.models import load_model

    loaded = load_model(str(tiny_whisper))
    make_talkative(loaded.model)
    out = tmp_path_factory.mktemp("models") / "talkative"
    loaded.adapter.save(loaded, out)
    return out
