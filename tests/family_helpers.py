"""Steps the tests of several model families share: staying offline, training a tiny model
from the command line, running a model card's usage code and importing a demo app with plain
transformers, as a reader would."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from tests.conftest import FAST_TRAINING, tone


def stay_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No request leaves the machine: huggingface_hub stops at its network boundary, and
    no token is set."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def import_demo_app(
    app_py: Path, monkeypatch: pytest.MonkeyPatch, model_id: str | None = None
) -> ModuleType:
    """A demo app written by ``asrtune demo-app``, imported as a fresh module, with
    ``MODEL_ID`` set to ``model_id`` (None: the app's own model)."""
    if model_id is None:
        monkeypatch.delenv("MODEL_ID", raising=False)
    else:
        monkeypatch.setenv("MODEL_ID", model_id)
    name = f"asrtune_demo_app_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, app_py)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    sys.modules.pop(name, None)
    return module


def train_from_cli(
    model: Path, dataset: Path, out: Path, *flags: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``asrtune train`` of ``model`` on ``dataset`` into ``out`` with ``flags`` (after the
    fast test flags); returns the weights before and after (``out``'s model.safetensors;
    none after a LoRA run, which writes an adapter)."""
    from asrtune.cli import main

    args = ["--model", str(model), "--train-manifest", str(dataset), "--output_dir", str(out)]
    assert main(["train", *args, *FAST_TRAINING, *flags]) == 0
    before = load_file(str(model / "model.safetensors"))
    after = (
        load_file(str(out / "model.safetensors")) if (out / "model.safetensors").is_file() else {}
    )
    return before, after


def run_card_usage(
    model: Path,
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> tuple[str, str, np.ndarray]:
    """``asrtune push MODEL REPO *argv --dry-run`` offline, then the card's Python code run
    on a 1.2-s stereo 22.05-kHz clip, with the repo id and "audio.wav" replaced by the
    upload folder and the clip. Returns the card, what the code printed, and the clip as
    the code reads it (mono 16 kHz)."""
    import soxr

    from asrtune.cli import main

    stay_offline(monkeypatch)
    speech = tmp_path / "stereo.wav"
    sf.write(speech, tone(1.2, 330.0, rate=22050, channels=2), 22050)
    dst, repo = tmp_path / "upload", argv[0]
    assert main(["push", str(model), *argv, "--dry-run", "--output", str(dst)]) == 0
    text = (dst / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    for old, new in {
        json.dumps(repo): json.dumps(str(dst)),
        '"audio.wav"': json.dumps(str(speech)),
    }.items():
        assert old in code, old
        code = code.replace(old, new)
    capsys.readouterr()
    exec(compile(code, "model_card_usage", "exec"), {"__name__": "__main__"})
    audio, rate = sf.read(speech, dtype="float32")
    return text, capsys.readouterr().out.strip(), soxr.resample(audio.mean(axis=1), rate, 16000)


def tiny_trainer(
    loaded: Any, output_dir: Path, dataset: Any = None, trainer_options: Any = None, **args: Any
) -> Any:
    """An AsrTrainer over ``loaded`` built by hand (no config): CPU, no tracking, no eval
    rows; ``args`` go to TrainingArguments, ``trainer_options`` to AsrTrainer."""
    from transformers import TrainingArguments

    from asrtune.inference import DecodingOptions
    from asrtune.trainer import AsrTrainer

    training = TrainingArguments(output_dir=str(output_dir), report_to="none", use_cpu=True, **args)
    return AsrTrainer(
        model=loaded.model,
        args=training,
        train_dataset=dataset,
        data_collator=loaded.adapter.collate,
        loaded=loaded,
        eval_rows=[],
        decoding=DecodingOptions(),
        **(trainer_options or {}),
    )
