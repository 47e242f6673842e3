"""Every registered family's published code against asrtune's own decoding: the demo app
(``asrtune demo-app``) and the model card's usage code (``asrtune push --dry-run``) run with
plain transformers and give the text ``asrtune transcribe`` gives, on a tiny random model."""

from __future__ import annotations

import importlib.util
import re
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asrtune
from asrtune.cli import main
from asrtune.models import FAMILIES
from tests.conftest import tone


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def _import_app(app_py: Path) -> object:
    name = f"asrtune_family_app_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, app_py)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    sys.modules.pop(name, None)
    return module


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_demo_app_decodes_like_asrtune(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if family == "voxtral":
        pytest.importorskip("mistral_common")
    model = FAMILIES[family].build_tiny(tmp_path / "model", seed=3)
    clip = tmp_path / "clip.wav"
    noise = 0.01 * np.random.default_rng(0).standard_normal(24000)
    sf.write(clip, tone(1.5, 220.0) + noise, 16000)
    # in float32 like the app (auto precision may pick bf16 on this CPU)
    fp32 = asrtune.DecodingOptions(precision="fp32")
    expected = asrtune.transcribe(str(model), [str(clip)], fp32)[0]

    app_dir = tmp_path / "space"
    assert main(["demo-app", str(model), str(app_dir)]) == 0
    app_text = (app_dir / "app.py").read_text()
    assert not re.search(r"^\s*(import|from) asrtune", app_text, re.M)
    monkeypatch.setenv("ASR_VAD", "0")  # a tone is no speech: decode it whole
    monkeypatch.delenv("MODEL_ID", raising=False)
    app = _import_app(app_dir / "app.py")
    audio, rate = sf.read(clip, dtype="float32")
    assert app.transcribe((rate, audio)).strip() == expected.strip()
