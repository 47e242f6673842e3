"""asrtune export: a LoRA output folder → CTranslate2 and ONNX, checked against transformers
on the same features (greedy token ids equal in float32)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asrtune.cli import main
from asrtune.models import load_model
from tests.conftest import tone

PROMPT_TOKENS = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]


def _speech() -> list[np.ndarray]:
    """Two utterances of espeak-ng speech (tones where espeak-ng is not installed)."""
    try:
        from asrtune.data.synth import synthesize

        return [synthesize("Restart the gateway, please."), synthesize("The quick brown fox.")]
    except Exception:  # espeakng-loader missing: any two different sounds will do
        return [tone(1.6, 220.0), tone(1.1, 440.0)]


@pytest.fixture(scope="module")
def lora_out(tiny_whisper: Path, dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LoRA output of asrtune train on a tiny Whisper whose weights are large enough for
    greedy decoding to emit varied text tokens (timestamps suppressed: plain transcripts)."""
    from transformers import WhisperForConditionalGeneration

    root = tmp_path_factory.mktemp("export")
    base = root / "base"
    shutil.copytree(tiny_whisper, base)
    model = WhisperForConditionalGeneration.from_pretrained(base)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(1)
        for name, param in model.named_parameters():
            if "layer_norm" not in name:
                param.normal_(0.0, 0.5)
    first_timestamp = 618  # <|0.00|> in the tiny tokenizer
    model.generation_config.suppress_tokens = list(range(first_timestamp, model.config.vocab_size))
    model.save_pretrained(base)
    out = root / "lora"
    argv = ["train", "--model", str(base), "--train-manifest", str(dataset), "--output_dir"]
    argv += [str(out), "--lora", "--lora_r", "4", "--num_train_epochs", "1", "--report_to"]
    argv += ["none", "--save_strategy", "no", "--learning_rate", "1e-3", "--warmup_steps", "0"]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def reference(lora_out: Path) -> dict:
    """transformers' features and greedy ids for the adapter model (merged for inference)."""
    loaded = load_model(str(lora_out))
    processor = loaded.processor
    features = processor(_speech(), sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = loaded.model.generate(features, language="en", task="transcribe").tolist()
        hidden = loaded.model.get_encoder()(features).last_hidden_state.numpy()
    prompt = processor.tokenizer.convert_tokens_to_ids(PROMPT_TOKENS)
    assert ids[0] != ids[1] and len(set(ids[0])) > 5  # varied output: a meaningful comparison
    return {"features": features.numpy(), "ids": ids, "hidden": hidden, "prompt": prompt}


def test_ct2_export_decodes_like_transformers(
    lora_out: Path, reference: dict, tmp_path: Path
) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    dst = tmp_path / "ct2"
    assert main(["export", str(lora_out), "--format", "ct2", "--output", str(dst)]) == 0
    names = {p.name for p in dst.iterdir()}
    assert {"model.bin", "config.json", "vocabulary.json", "tokenizer.json"} <= names
    extractor = json.loads((dst / "preprocessor_config.json").read_text())
    assert extractor["feature_size"] == 80 and extractor["sampling_rate"] == 16000  # faster-whisper

    model = ctranslate2.models.Whisper(str(dst), device="cpu", compute_type="float32")
    features = ctranslate2.StorageView.from_array(reference["features"])
    encoded = np.array(model.encode(features))
    np.testing.assert_allclose(encoded, reference["hidden"], atol=1e-4, rtol=1e-4)
    results = model.generate(features, [reference["prompt"]] * 2, beam_size=1, max_length=60)
    for result, expected in zip(results, reference["ids"], strict=True):
        ids = result.sequences_ids[0]  # text tokens after the prompt
        assert len(ids) >= 16 and ids == expected[: len(ids)]

    dst8 = tmp_path / "ct2-int8"
    argv = ["export", str(lora_out), "--format", "ct2", "--quantization", "int8"]
    assert main([*argv, "--output", str(dst8)]) == 0
    assert (dst8 / "model.bin").stat().st_size < (dst / "model.bin").stat().st_size
    int8 = ctranslate2.models.Whisper(str(dst8), device="cpu", compute_type="int8")
    assert int8.generate(features, [reference["prompt"]] * 2, max_length=8)


def test_onnx_export_matches_torch(lora_out: Path, reference: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from asrtune.publish.onnx import DECODER_FILE, ENCODER_FILE, greedy_decode

    dst = tmp_path / "onnx"
    assert main(["export", str(lora_out), "--format", "onnx", "--output", str(dst)]) == 0
    names = {p.name for p in dst.iterdir()}
    assert {ENCODER_FILE, DECODER_FILE, "config.json", "generation_config.json"} <= names
    assert {"tokenizer.json", "preprocessor_config.json"} <= names

    encoder = ort.InferenceSession(str(dst / ENCODER_FILE))
    (hidden,) = encoder.run(None, {"input_features": reference["features"]})
    np.testing.assert_allclose(hidden, reference["hidden"], atol=1e-4, rtol=1e-4)
    ids = greedy_decode(dst, reference["features"], reference["prompt"])
    assert [row[len(reference["prompt"]) :] for row in ids] == reference["ids"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--format", "onnx", "--quantization", "int8"], "ct2 only"),
        (["--format", "ct2", "--output", "{tmp}"], "not empty"),
    ],
)
def test_export_user_errors(
    extra: list[str], message: str, lora_out: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "taken").write_text("x")
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    if "--output" not in extra:
        extra += ["--output", str(tmp_path / "new")]
    assert main(["export", str(lora_out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_ct2_export_loads_in_faster_whisper(lora_out: Path, tmp_path: Path) -> None:
    faster_whisper = pytest.importorskip("faster_whisper")
    dst = tmp_path / "ct2"
    assert main(["export", str(lora_out), "--format", "ct2", "--output", str(dst)]) == 0
    model = faster_whisper.WhisperModel(str(dst), device="cpu", compute_type="float32")
    assert model.feature_extractor.sampling_rate == 16000
    segments, info = model.transcribe(
        _speech()[0], language="en", beam_size=1, max_new_tokens=16, without_timestamps=True
    )
    assert info.language == "en" and isinstance([s.text for s in segments], list)
