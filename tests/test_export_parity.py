"""Export parity: asrtune export decodes a sample with the export and with transformers.

A tiny Whisper is trained here until it transcribes three generated clips exactly (WER 0),
so any export that changes its output shows up as a WER gap. Corrupted exports come from
exporters that damage the weights on purpose (noise on the HF weights before the ct2
conversion, noise on an ONNX initializer after the export); the check itself is not faked.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import asrtune
from asrtune.cli import main
from asrtune.errors import AsrtuneError
from asrtune.metrics import CorpusScore
from asrtune.publish.families import recipe_for
from asrtune.publish.parity import NO_SAMPLE, PARITY_FILE, ParityReport
from tests.conftest import make_talkative, tone

pytest.importorskip("ctranslate2")

TEXTS = ["yes please", "stop now", "call me back later"]


def _clips() -> list[np.ndarray]:
    return [tone(1.0 + 0.3 * i, 250.0 + 300.0 * i) for i in range(len(TEXTS))]


@pytest.fixture(scope="module")
def learned(tiny_whisper: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder, manifest): a tiny Whisper whose decoder learned the three clips'
    texts (encoder random, large weights so the clips look different to it)."""
    from transformers.modeling_outputs import BaseModelOutput

    from asrtune.models import load_model
    from asrtune.models.whisper import window_features

    root = tmp_path_factory.mktemp("parity")
    loaded = load_model(str(tiny_whisper))
    model = loaded.model
    make_talkative(model.get_encoder(), scale=0.3)
    clips = _clips()
    features, _ = window_features(loaded.processor.feature_extractor, clips)
    labels = [loaded.adapter.encode_labels(loaded, [t], "en", "transcribe") for t in TEXTS]
    width = max(map(len, labels))
    labels_t = torch.tensor([row + [-100] * (width - len(row)) for row in labels])
    with torch.no_grad():
        encoded = BaseModelOutput(last_hidden_state=model.get_encoder()(features).last_hidden_state)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
    model.train()
    for _ in range(40):
        model(encoder_outputs=encoded, labels=labels_t).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    out = root / "model"
    loaded.adapter.save(loaded, out)
    (root / "audio").mkdir()
    manifest = root / "sample.jsonl"
    with open(manifest, "w", encoding="utf-8") as handle:
        for i, (clip, text) in enumerate(zip(clips, TEXTS, strict=True)):
            sf.write(root / "audio" / f"c{i}.wav", clip, 16000)
            row = {"id": f"c{i}", "audio_path": f"audio/c{i}.wav", "text": text, "language": "en"}
            handle.write(json.dumps(row) + "\n")
    hypotheses = loaded.adapter.generate(loaded, clips, "en", "transcribe", precision="fp32")
    assert list(hypotheses) == TEXTS  # the reference side is right: a gap means a bad export
    return out, manifest


# --------------------------------------------------------------------------- corrupted exports


def noisy_ct2(model_dir: Path, output: Path, quantization: str | None = None) -> None:
    """ctranslate2's conversion of a copy of the model whose decoder got noise."""
    from transformers import WhisperForConditionalGeneration

    from asrtune.publish.export import whisper_to_ct2

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "noisy"
        shutil.copytree(model_dir, copy)
        model = WhisperForConditionalGeneration.from_pretrained(copy)
        generator = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for param in model.model.decoder.parameters():
                if param.dim() > 1:
                    param.add_(torch.randn(param.shape, generator=generator) * param.std())
        model.save_pretrained(copy)
        whisper_to_ct2(copy, output, quantization)


def noisy_onnx(model_dir: Path, output: Path, quantization: str | None = None) -> None:
    """The real ONNX export, then noise on the decoder graph's largest initializer."""
    import onnx
    from onnx import numpy_helper

    from asrtune.publish.onnx import DECODER_FILE, whisper_to_onnx

    whisper_to_onnx(model_dir, output, quantization)
    path = output / DECODER_FILE
    graph = onnx.load(str(path))
    largest = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(largest)
    noise = np.random.default_rng(7).normal(0.0, float(weights.std()), weights.shape)
    largest.CopyFrom(numpy_helper.from_array((weights + noise).astype(weights.dtype), largest.name))
    onnx.save(graph, str(path))


NOISY = {"ct2": f"{__name__}:noisy_ct2", "onnx": f"{__name__}:noisy_onnx"}


def _needs(fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
        pytest.importorskip("onnxruntime")


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("fmt", ["ct2", "onnx"])
def test_verify_passes_a_faithful_export_and_writes_the_figures(
    fmt: str, learned: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _needs(fmt)
    model, manifest = learned
    dst = tmp_path / fmt
    argv = ["export", str(model), "--format", fmt, "--output", str(dst), "--verify"]
    assert main([*argv, "--verify_manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert f"parity on 3 rows of {manifest}" in out and "gap +0.00 points" in out
    report = json.loads((dst / PARITY_FILE).read_text())
    assert report["samples"] == 3 and report["format"] == fmt and report["quantization"] is None
    for side in ("hf", "exported"):
        assert report[side]["seconds"] > 0
        assert {k: report[side][k] for k in ("wer", "cer", "loops")} == {
            "wer": 0.0,
            "cer": 0.0,
            "loops": 0,
        }
    assert report["wer_gap"] == 0.0
    entry = json.loads((model / PARITY_FILE).read_text())[fmt]
    assert entry["output"] == str(dst.resolve()) and entry["hf"] == report["hf"]


@pytest.mark.parametrize("fmt", ["ct2", "onnx"])
def test_verify_fails_a_corrupted_export_and_keeps_it(
    fmt: str,
    learned: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _needs(fmt)
    model, manifest = learned
    monkeypatch.setitem(recipe_for("whisper").exports, fmt, NOISY[fmt])
    dst = tmp_path / fmt
    argv = ["export", str(model), "--format", fmt, "--output", str(dst), "--verify"]
    assert main([*argv, "--verify-manifest", str(manifest), "--max-wer-gap", "0.05"]) == 2
    err = capsys.readouterr().err
    message = err.strip().splitlines()[-1]  # earlier lines: progress bars of the loaders
    assert "Traceback" not in err and f"{fmt} export fails the parity check on 3 rows" in message
    assert message.endswith(f"the export stays in {dst} for inspection")
    report = json.loads((dst / PARITY_FILE).read_text())
    assert report["hf"]["wer"] == 0.0 and report["exported"]["wer"] > 0.05
    assert report["wer_gap"] == report["exported"]["wer"]
    # without --verify the same export succeeds and reports the gap
    other = tmp_path / "unchecked"
    argv = ["export", str(model), "--format", fmt, "--output", str(other)]
    assert main([*argv, "--verify_manifest", str(manifest)]) == 0
    assert "gap +" in capsys.readouterr().out
    assert json.loads((other / PARITY_FILE).read_text())["wer_gap"] > 0.05


def test_sample_comes_from_the_training_eval_rows(
    learned: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from asrtune.publish.bundle import model_bundle
    from asrtune.publish.card import build_card

    source, manifest = learned
    model = tmp_path / "model"
    shutil.copytree(source, model)
    (model / PARITY_FILE).unlink(missing_ok=True)
    config = {"model": {"language": "en"}, "data": {"eval_manifest": str(manifest)}}
    (model / "training_config.json").write_text(json.dumps(config))
    argv = ["export", str(model), "--format", "ct2", "--quantization", "int8"]
    assert main([*argv, "--output", str(tmp_path / "a"), "--verify_samples", "2"]) == 0
    assert f"parity on 2 rows of {manifest}" in capsys.readouterr().out
    entry = json.loads((model / PARITY_FILE).read_text())["ct2-int8"]
    assert entry["samples"] == 2 and entry["quantization"] == "int8"

    with model_bundle(model) as bundle:
        card = build_card(bundle, "me/tiny")
    assert "## Exported model parity" in card
    hf, exported = _percent(entry["hf"]["wer"]), _percent(entry["exported"]["wer"])
    assert f"| ct2 (int8) | 2 | {hf} % | {exported} % | 0 |" in card

    moved = manifest.with_name("gone.jsonl")
    manifest.rename(moved)
    try:
        argv = ["export", str(model), "--format", "ct2", "--output"]
        assert main([*argv, str(tmp_path / "b")]) == 0
        assert f"parity: {NO_SAMPLE}" in capsys.readouterr().out
        assert main([*argv, str(tmp_path / "c"), "--verify"]) == 2
        err = capsys.readouterr().err
        assert NO_SAMPLE in err and not (tmp_path / "c").exists()
    finally:
        moved.rename(manifest)


def _percent(value: float) -> float:
    return round(100 * value, 2)


def test_api_export_returns_the_parity(learned: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest = learned
    result = asrtune.export(model, "ct2", tmp_path / "x", manifest=str(manifest), verify=True)
    assert result.output == tmp_path / "x" and result.parity is not None
    assert result.parity.samples == 3 and result.parity.wer_gap == 0.0
    skipped = asrtune.export(model, "ct2", tmp_path / "y", samples=0)
    assert skipped.parity is None and "--verify_samples 0" in (skipped.note or "")
    with pytest.raises(AsrtuneError, match="unknown export option"):
        asrtune.export(model, "ct2", tmp_path / "z", manifets="x")


def _score(wer: float, loops: int = 0) -> CorpusScore:
    return CorpusScore(wer=wer, cer=wer / 2, wer_unnormalized=wer, num_samples=10,
                       reference_words=100, loops=loops)  # fmt: skip


@pytest.mark.parametrize(
    "hf,exported,fails",
    [
        (_score(0.10), _score(0.115), None),  # within the 2-point gap
        (_score(0.10), _score(0.05), None),  # better is fine
        (_score(0.10), _score(0.125), "gap 2.50 points > 2.00"),
        (_score(0.10, loops=1), _score(0.10, loops=2), "2 looping transcripts vs 1"),
    ],
)
def test_parity_rules(hf: CorpusScore, exported: CorpusScore, fails: str | None) -> None:
    report = ParityReport("onnx", None, "rows.jsonl", hf, exported)
    failure = report.failure(0.02)
    assert (failure is None) if fails is None else (fails in (failure or ""))
