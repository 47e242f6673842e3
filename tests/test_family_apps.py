"""Every registered family from the command line, offline: a tiny random model, training,
evaluation, transcription, and a demo app (plain transformers, no asrtune) that gives the
text ``asrtune transcribe`` gives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asrtune
from asrtune.cli import main
from asrtune.models import FAMILIES
from tests.conftest import FAST_TRAINING, tone, write_dataset
from tests.family_helpers import import_demo_app, stay_offline


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    stay_offline(monkeypatch)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_make_tiny_train_eval_and_the_demo_app_from_the_cli(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journey of every family, offline: make-tiny, train (with evaluation), eval,
    transcribe, then a demo app that decodes the fine-tune as asrtune does."""
    if family == "voxtral":
        pytest.importorskip("mistral_common")
    base, out = tmp_path / "base", tmp_path / "ft"
    assert main(["make-tiny", "--family", family, str(base)]) == 0
    data = write_dataset(tmp_path / "data", 4)
    argv = ["train", "--model", str(base), "--train-manifest", str(data)]
    argv += ["--eval-manifest", str(data), "--output_dir", str(out), "--save_strategy", "no"]
    assert main([*argv, *FAST_TRAINING, "--generation_max_length", "8"]) == 0
    trained = json.loads((out / "eval_results.json").read_text())
    assert trained["num_samples"] == 4 and trained["wer"] >= 0
    report = tmp_path / "eval.json"
    argv = ["eval", "--model", str(out), "--manifest", str(data), "--output", str(report)]
    assert main([*argv, "--max-new-tokens", "8"]) == 0
    assert json.loads(report.read_text())["num_samples"] == 4

    clip = tmp_path / "clip.wav"
    noise = 0.01 * np.random.default_rng(0).standard_normal(24000)
    sf.write(clip, tone(1.5, 220.0) + noise, 16000)
    assert main(["transcribe", "--model", str(out), str(clip), "--max-new-tokens", "8"]) == 0
    # in float32 like the app (auto precision may pick bf16 on this CPU), in the language
    # the app was given: the training data's
    fp32 = asrtune.DecodingOptions(precision="fp32", language="en")
    expected = asrtune.transcribe(str(out), [str(clip)], fp32)[0]

    app_dir = tmp_path / "space"
    assert main(["demo-app", str(out), str(app_dir)]) == 0
    app_text = (app_dir / "app.py").read_text()
    assert not re.search(r"^\s*(import|from) asrtune", app_text, re.M)
    monkeypatch.setenv("ASR_VAD", "0")  # a tone is no speech: decode it whole
    app = import_demo_app(app_dir / "app.py", monkeypatch)
    assert app.LANGUAGE == "en"
    audio, rate = sf.read(clip, dtype="float32")
    assert app.transcribe((rate, audio)).strip() == expected.strip()
