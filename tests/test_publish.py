"""Publishing, in-process through the CLI: push (dry run and up to the network call), the
model card and its usage code, the demo app, and LoRA merge; on tiny models."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrtune.cli import main
from asrtune.errors import AsrtuneError
from asrtune.publish.card import base_license, front_matter
from asrtune.publish.families import recipe_for
from tests.conftest import tone
from tests.family_helpers import import_demo_app, stay_offline

TOKEN = "hf_asrtuneTestSecret" + "0123456789abcdef"
REPO = "someone/tiny-ft"
BASE_HUB = "openai/whisper-tiny"
TRAIN = [
    "--report_to",
    "none",
    "--per_device_train_batch_size",
    "4",
    "--learning_rate",
    "1e-3",
    "--warmup_steps",
    "0",
    "--num_train_epochs",
    "1",
    "--generation_max_length",
    "8",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    stay_offline(monkeypatch)


@pytest.fixture(scope="module")
def lora_out(tiny_whisper: Path, dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA output folder of asrtune train (eval results, a checkpoint with optimizer state)
    plus OUT/baseline_results.json from asrtune eval of the base."""
    out = tmp_path_factory.mktemp("publish") / "lora"
    argv = ["train", "--model", str(tiny_whisper), "--train-manifest", str(dataset)]
    argv += ["--eval-manifest", str(dataset), "--output_dir", str(out), "--lora", "--lora_r", "4"]
    assert main([*argv, *TRAIN]) == 0
    assert list(out.glob("checkpoint-*/optimizer.pt"))
    baseline = out / "baseline_results.json"
    argv = ["eval", "--model", str(tiny_whisper), "--manifest", str(dataset)]
    assert main([*argv, "--output", str(baseline), "--max-new-tokens", "8"]) == 0
    return out


@pytest.fixture(scope="module")
def full_out(tiny_whisper: Path, dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("publish") / "full"
    argv = ["train", "--model", str(tiny_whisper), "--train-manifest", str(dataset)]
    assert main([*argv, "--output_dir", str(out), "--save_strategy", "no", *TRAIN]) == 0
    return out


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stereo 22.05-kHz audio, so the usage code's mono/resampling lines run too."""
    path = tmp_path_factory.mktemp("audio") / "stereo.wav"
    sf.write(path, tone(1.2, 330.0, rate=22050, channels=2), 22050)
    return path


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    return front_matter(text), text


def _run_snippet(text: str, replace: dict[str, str], capsys: pytest.CaptureFixture) -> str:
    """Run the card's python block with Hub ids swapped for local folders; its stdout."""
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    for old, new in replace.items():
        assert old in code, old
        code = code.replace(old, new)
    capsys.readouterr()
    exec(compile(code, "model_card_usage", "exec"), {"__name__": "__main__"})
    return capsys.readouterr().out


def _metrics(meta: dict) -> dict[str, float]:
    (entry,) = meta["model-index"]
    (result,) = entry["results"]
    assert result["task"]["type"] == "automatic-speech-recognition"
    return {m["name"]: m["value"] for m in result["metrics"]}


# --------------------------------------------------------------------------- push


def test_push_adapter_dry_run_is_exactly_what_users_need_and_its_card_runs(
    lora_out: Path,
    tiny_whisper: Path,
    speech_file: Path,
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import huggingface_hub

    # the Hub has the dataset (the card names only datasets that exist; offline, none does)
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_exists", lambda *a, **k: True)
    dst = tmp_path / "upload"
    argv = ["push", str(lora_out), REPO, "--adapter", "--base-model", BASE_HUB]
    argv += ["--dataset-repo", "someone/help-desk-speech", "--dry-run", "--output", str(dst)]
    assert main(argv) == 0
    files = sorted(p.name for p in dst.rglob("*"))
    assert files == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "baseline_results.json",
        "eval_results.json",
        "generation_config.json",  # the adapter's decoding settings (see load_model)
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    adapter_config = json.loads((dst / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == BASE_HUB
    assert (dst / "adapter_model.safetensors").read_bytes() == (
        lora_out / "adapter_model.safetensors"
    ).read_bytes()
    report = json.loads((dst / "eval_results.json").read_text())
    assert (
        "model" not in report
        and report["wer"] == json.loads((lora_out / "eval_results.json").read_text())["wer"]
    )

    meta, text = _card(dst)
    assert meta["license"] == "apache-2.0"  # from the known licenses of openai/whisper-*
    assert meta["base_model"] == BASE_HUB and meta["base_model_relation"] == "adapter"
    assert meta["library_name"] == "peft"
    assert meta["pipeline_tag"] == "automatic-speech-recognition"
    assert meta["language"] == ["en"] and meta["datasets"] == ["someone/help-desk-speech"]
    after = json.loads((lora_out / "eval_results.json").read_text())
    before = json.loads((lora_out / "baseline_results.json").read_text())
    metrics = _metrics(meta)
    assert metrics["WER"] == round(100 * after["wer"], 2)
    assert metrics["CER"] == round(100 * after["cer"], 2)
    assert metrics["WER of the base model (before fine-tuning)"] == round(100 * before["wer"], 2)
    assert "| lora_r | `4` |" in text and "| learning_rate | `0.001` |" in text
    assert "base model (before fine-tuning)" in text  # the before/after table
    # the adapter's own decoding settings (trained on non-speech: it may say nothing)
    assert "model.generation_config = GenerationConfig.from_pretrained(model_id)" in text

    printed = _run_snippet(
        text,
        {
            json.dumps(REPO): json.dumps(str(dst)),
            json.dumps(BASE_HUB): json.dumps(str(tiny_whisper)),
            '"audio.wav"': json.dumps(str(speech_file)),
        },
        capsys,
    )
    assert printed.endswith("\n")


def test_push_merges_an_adapter_whose_base_is_local_and_its_card_runs(
    lora_out: Path, speech_file: Path, tmp_path: Path, capsys
) -> None:
    dst = tmp_path / "upload"
    report = tmp_path / "before.json"
    report.write_text(json.dumps({"wer": 0.5, "cer": 0.25, "wer_unnormalized": 0.6}))
    argv = ["push", str(lora_out), REPO, "--baseline-report", str(report)]
    assert main([*argv, "--dry-run", "--output", str(dst)]) == 0
    names = {p.name for p in dst.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json"} <= names
    assert not names & {"adapter_config.json", "adapter_model.safetensors"}
    assert not any(n.endswith((".bin", ".pt", ".pth")) or "checkpoint" in n for n in names)
    meta, text = _card(dst)
    assert meta["library_name"] == "transformers" and "base_model" not in meta
    assert meta["license"] == "other"  # a local base without a README license
    assert _metrics(meta)["WER of the base model (before fine-tuning)"] == 50.0
    assert json.loads((dst / "baseline_results.json").read_text())["wer"] == 0.5
    printed = _run_snippet(
        text,
        {json.dumps(REPO): json.dumps(str(dst)), '"audio.wav"': json.dumps(str(speech_file))},
        capsys,
    )
    assert printed.endswith("\n")


def test_the_card_never_names_a_local_path_or_a_dataset_that_does_not_exist(
    full_out: Path, tiny_whisper: Path, tmp_path: Path
) -> None:
    argv = ["push", str(full_out), REPO, "--dataset_repo", "someone/never-uploaded"]
    assert main([*argv, "--dry-run", "--output", str(tmp_path / "a")]) == 0
    meta, text = _card(tmp_path / "a")
    first = text.split("# tiny-ft", 1)[1].strip().splitlines()[0]
    assert first.startswith("A fine-tuned version of a local model for speech"), first
    assert str(tiny_whisper) not in text and "never-uploaded" not in text  # offline: unknown
    assert "datasets" not in meta and "base_model" not in meta
    # a base whose config.json records its Hub id (transformers' _name_or_path) is named
    config = json.loads((tiny_whisper / "config.json").read_text())
    named = tmp_path / "named-base"
    shutil.copytree(tiny_whisper, named)
    (named / "config.json").write_text(json.dumps({**config, "_name_or_path": BASE_HUB}))
    out = shutil.copytree(full_out, tmp_path / "out")
    training = json.loads((out / "training_config.json").read_text())
    training["model"]["model"] = str(named)
    (out / "training_config.json").write_text(json.dumps(training))
    assert main(["push", str(out), REPO, "--dry-run", "--output", str(tmp_path / "b")]) == 0
    meta, text = _card(tmp_path / "b")
    assert f"A fine-tuned version of [{BASE_HUB}](https://huggingface.co/{BASE_HUB})" in text
    assert meta["base_model"] == BASE_HUB and str(named) not in text


def test_push_full_model(full_out: Path, tmp_path: Path, capsys) -> None:
    assert main(["push", str(full_out), REPO, "--adapter", "--dry-run", "--output", "x"]) == 2
    assert "not a LoRA adapter" in capsys.readouterr().err
    dst = tmp_path / "upload"
    argv = ["push", str(full_out), REPO, "--base-model", BASE_HUB, "--language", "english"]
    assert main([*argv, "--dry-run", "--output", str(dst)]) == 0
    meta, text = _card(dst)
    assert meta["base_model"] == BASE_HUB and meta["base_model_relation"] == "finetune"
    assert meta["language"] == ["en"] and "model-index" not in meta  # trained without eval
    assert "lora" not in meta["tags"] and "| lora | `False` |" in text
    assert {p.name for p in dst.iterdir()} >= {"model.safetensors", "generation_config.json"}
    # the folder must be new: a second dry run into it fails
    assert main([*argv, "--dry-run", "--output", str(dst)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_push_uploads_in_one_call_without_ever_showing_the_token(
    lora_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, caplog
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    dst = tmp_path / "upload"
    assert main(["push", str(lora_out), REPO, "--dry-run", "--output", str(dst)]) == 0
    for path in dst.rglob("*"):
        assert TOKEN.encode() not in path.read_bytes(), path
    # the real upload: huggingface_hub's API, stopped at the network by offline mode
    assert main(["push", str(lora_out), REPO, "--private"]) == 2
    out, err = capsys.readouterr()
    assert f"upload to {REPO} failed" in err and "Traceback" not in err
    assert TOKEN not in out + err + caplog.text


def test_push_without_a_token_says_how_to_log_in(
    lora_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "none"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "n"))
    assert main(["push", str(lora_out), REPO]) == 2
    assert "set HF_TOKEN or run `hf auth login`" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["push", "{out}", "not a repo id"], "not a Hub repository id"),
        (["push", "{out}", REPO, "--dry-run"], "--dry-run and --output go together"),
        (["push", "{out}", REPO, "--adapter", "--dry-run", "--output", "{tmp}/x"], "--base-model"),
        (["push", "{tmp}", REPO, "--dry-run", "--output", "{tmp}/x"], "holds no model"),
        (["push", "{out}", REPO, "--baseline-report", "{tmp}/none.json"], "baseline report"),
        (["merge", "{tmp}", "{tmp}/merged"], "not a LoRA adapter"),
    ],
)
def test_publish_user_errors_are_one_line(
    argv: list[str], message: str, lora_out: Path, tmp_path: Path, capsys
) -> None:
    argv = [a.replace("{out}", str(lora_out)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_card_leads_with_cer_for_languages_written_without_spaces(tmp_path: Path) -> None:
    from asrtune.publish.bundle import ModelInfo
    from asrtune.publish.card import _results_table, model_index

    report = {"wer": 0.3, "cer": 0.2, "wer_unnormalized": 0.4, "headline": "cer"}
    info = ModelInfo(tmp_path, "whisper", False, "base", {}, {}, report)
    baseline = {"wer": 0.6, "cer": 0.5, "wer_unnormalized": 0.7, "headline": "cer"}
    metrics = model_index("m", info, baseline, None)[0]["results"][0]["metrics"]
    assert [m["type"] for m in metrics] == ["cer", "wer", "cer", "wer"]
    assert metrics[0]["value"] == 20.0
    assert _results_table(info, baseline).startswith("| model | CER | WER | WER on raw text |")
    detailed = {**report, "substitutions": 3, "deletions": 1, "insertions": 2, "loops": 1}
    detailed |= {"num_samples": 9, "longform": {"files": 2, "wer": 0.25, "cer": 0.1}}
    table = _results_table(ModelInfo(tmp_path, "whisper", False, "base", {}, {}, detailed), None)
    assert "- this model: 3 substituted, 1 deleted and 2 inserted words; 1 of 9" in table
    assert "WER 25.00 % on 2 long file(s)." in table
    probes = {"clips": 12, "words": 0, "clips_with_words": 0}
    quiet = ModelInfo(tmp_path, "whisper", False, "base", {}, {}, {**detailed, "nonspeech": probes})
    assert "0 word(s) said on 0 of 12 clips without speech" in _results_table(quiet, None)
    english = ModelInfo(tmp_path, "whisper", False, "base", {}, {}, {**report, "headline": "wer"})
    assert model_index("m", english, None, None)[0]["results"][0]["metrics"][0]["type"] == "wer"


def test_base_license_prefers_the_local_readme(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# base\n")
    assert base_license(str(tmp_path), BASE_HUB) == "mit"
    assert base_license(str(tmp_path / "none"), BASE_HUB) == "apache-2.0"
    assert base_license("mistralai/Voxtral-Mini-3B-2507") == "apache-2.0"
    assert base_license("someone/model") == "other"


# --------------------------------------------------------------------------- merge


def test_merge_gives_the_adapter_models_logits(
    lora_out: Path, tiny_whisper: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    merged = tmp_path / "merged"
    assert main(["merge", str(lora_out), str(merged)]) == 0
    names = {p.name for p in merged.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= names
    torch.manual_seed(0)
    features = torch.randn(2, 80, 3000)
    ids = torch.tensor([[511, 512, 613, 617, 300, 301]] * 2)
    base = WhisperForConditionalGeneration.from_pretrained(tiny_whisper).eval()
    with torch.no_grad():
        base_logits = base(input_features=features, decoder_input_ids=ids).logits
        adapter = PeftModel.from_pretrained(base, str(lora_out)).eval()  # not merged
        adapter_logits = adapter(input_features=features, decoder_input_ids=ids).logits
        model = WhisperForConditionalGeneration.from_pretrained(merged).eval()
        merged_logits = model(input_features=features, decoder_input_ids=ids).logits
    assert torch.allclose(adapter_logits, merged_logits, atol=1e-5)
    assert not torch.allclose(base_logits, merged_logits, atol=1e-4)  # the adapter matters
    assert main(["merge", str(lora_out), str(merged)]) == 2  # never over a model
    assert main(["merge", str(merged), str(tmp_path / "again")]) == 2  # not an adapter


def _half_precision_copy(tiny_whisper: Path, folder: Path, dtype: torch.dtype) -> Path:
    """The tiny Whisper saved in ``dtype`` (its config.json then names that dtype)."""
    from asrtune.models import load_model

    loaded = load_model(str(tiny_whisper))
    loaded.model.to(dtype)
    loaded.adapter.save(loaded, folder)
    return folder


def test_merge_keeps_the_bases_precision_on_a_gpu_machine(
    tiny_whisper: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`asrtune merge` (and export) must merge in the base's own precision, as
    `train --merge` does, not in the half precision a GPU machine loads for inference."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import WhisperForConditionalGeneration

    import asrtune.models

    base = _half_precision_copy(tiny_whisper, tmp_path / "bf16-base", torch.bfloat16)
    model = WhisperForConditionalGeneration.from_pretrained(base)
    assert model.dtype == torch.bfloat16
    adapter = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    for name, param in adapter.named_parameters():
        if "lora_B" in name:
            param.data.normal_()
    adapter.save_pretrained(tmp_path / "adapter")
    # what load_model places inference models in on a CUDA machine
    monkeypatch.setattr(asrtune.models, "inference_placement", lambda _: {"dtype": torch.float16})
    assert main(["merge", str(tmp_path / "adapter"), str(tmp_path / "merged")]) == 0
    weights = load_file(str(tmp_path / "merged" / "model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.bfloat16}


def test_a_half_precision_checkpoint_runs_in_float32_on_the_cpu(
    tiny_whisper: Path, tmp_path: Path
) -> None:
    """The documented "CPU in float32", whatever dtype the checkpoint's config names."""
    from asrtune.models import load_model

    base = _half_precision_copy(tiny_whisper, tmp_path / "fp16", torch.float16)
    assert json.loads((base / "config.json").read_text())["dtype"] == "float16"
    assert next(load_model(str(base)).model.parameters()).dtype == torch.float32


def test_push_of_a_runs_merged_folder_keeps_the_runs_card(lora_out: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(lora_out, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    assert main(["merge", str(run), str(run / "merged")]) == 0  # like train --merge
    dst = tmp_path / "upload"
    argv = ["push", str(run / "merged"), REPO, "--base-model", BASE_HUB]
    assert main([*argv, "--dry-run", "--output", str(dst)]) == 0
    meta, text = _card(dst)
    assert meta["base_model_relation"] == "merge" and meta["library_name"] == "transformers"
    assert "WER" in _metrics(meta) and "| lora_r | `4` |" in text
    assert "model.safetensors" in {p.name for p in dst.iterdir()}


# --------------------------------------------------------------------------- demo app


def test_demo_app_transcribes_with_the_fine_tuned_model(
    lora_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speech_file: Path
) -> None:
    app_dir = tmp_path / "space"
    assert main(["demo-app", str(lora_out), str(app_dir), "--title", "Help desk ASR"]) == 0
    assert {p.name for p in app_dir.iterdir()} == {
        "app.py",
        "requirements.txt",
        "README.md",
        "model",
    }
    meta, _ = _card(app_dir)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    app_text = (app_dir / "app.py").read_text()
    assert not re.search(r"^\s*(import|from) asrtune", app_text, re.M)
    assert "asrtune" not in (app_dir / "requirements.txt").read_text()

    audio = (16000, (tone(1.5, 250.0) * 32767).astype(np.int16))  # what gr.Audio gives
    monkeypatch.setenv("ASR_VAD", "0")  # a tone is no speech: decode it whole
    bundled = import_demo_app(app_dir / "app.py", monkeypatch, None)
    assert bundled.MODEL_ID == "model" and bundled.LANGUAGE == "en"
    text = bundled.transcribe(audio)
    assert isinstance(text, str) and bundled.transcribe(None) == ""
    assert isinstance(bundled.transcribe(str(speech_file)), str)
    # MODEL_ID pointing at the LoRA folder: adapter merged onto its base, same text
    adapter = import_demo_app(app_dir / "app.py", monkeypatch, str(lora_out))
    assert adapter.adapter_base(str(lora_out)) is not None
    assert adapter.transcribe(audio) == text
    if importlib.util.find_spec("gradio") is not None:
        assert type(bundled.build_demo()).__name__ == "Interface"  # built, never launched


def test_demo_app_skips_non_speech_and_cuts_long_speech_with_vad(
    lora_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("silero_vad")
    pytest.importorskip("espeakng_loader")
    from asrtune.data.synth import synthesize

    app_dir = tmp_path / "space"
    assert main(["demo-app", str(lora_out), str(app_dir)]) == 0
    assert "silero-vad" in (app_dir / "requirements.txt").read_text().split()
    monkeypatch.delenv("ASR_VAD", raising=False)  # on by default
    app = import_demo_app(app_dir / "app.py", monkeypatch, None)
    assert app.VAD
    hum = 0.1 * np.sin(2 * np.pi * 50 * np.arange(3 * 16000) / 16000)
    assert app.transcribe((16000, hum.astype(np.float32))) == ""
    assert app.load.cache_info().currsize == 0  # no speech: the model never loaded
    speech = synthesize("please restart the gateway on the main cluster before nine thirty")
    pause = np.zeros(16000, np.float32)
    long = np.concatenate([pause, speech] * 9)  # about 45 s: more than one window
    chunks = app.speech_chunks(long)
    assert len(chunks) >= 2
    assert all(0 < end - start <= 30 * 16000 for start, end in chunks)
    assert isinstance(app.transcribe((16000, long)), str)
    assert app.load.cache_info().currsize == 1


def test_demo_app_for_a_hub_model_and_space_push_up_to_the_network(
    lora_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    app_dir = tmp_path / "space"
    argv = ["demo-app", str(lora_out), str(app_dir), "--model-id", REPO]
    assert main([*argv, "--push-space", "someone/tiny-ft-demo"]) == 2
    out, err = capsys.readouterr()
    assert "upload to someone/tiny-ft-demo failed" in err and TOKEN not in out + err
    assert {p.name for p in app_dir.iterdir()} == {"app.py", "requirements.txt", "README.md"}
    app_text = (app_dir / "app.py").read_text()
    assert f'MODEL_ID = os.environ.get("MODEL_ID") or "{REPO}"' in app_text
    assert _card(app_dir)[0]["models"] == [REPO]


# --------------------------------------------------------------------------- families


def test_every_registered_family_has_a_publish_recipe() -> None:
    from asrtune.models import FAMILIES

    for name in FAMILIES:
        assert recipe_for(name).family == name
    with pytest.raises(AsrtuneError, match="not supported for voxtral"):
        recipe_for("voxtral").exporter("ct2")
    with pytest.raises(AsrtuneError, match="not supported for voxtral"):
        recipe_for("voxtral").exporter("onnx")


@pytest.fixture(scope="module")
def voxtral_lora_out(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from asrtune.models.tiny_voxtral import make_tiny_voxtral

    root = tmp_path_factory.mktemp("voxtral")
    base = make_tiny_voxtral(root / "tiny-voxtral")
    out = root / "lora"
    argv = ["train", "--model", str(base), "--train-manifest", str(dataset), "--output_dir"]
    argv += [str(out), "--lora", "--lora_r", "4", "--save_strategy", "no"]
    assert main([*argv, *TRAIN]) == 0
    return out


def test_voxtral_card_app_and_export(
    voxtral_lora_out: Path,
    speech_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    base = json.loads((voxtral_lora_out / "adapter_config.json").read_text())
    base = base["base_model_name_or_path"]
    hub_base = "mistralai/Voxtral-Mini-3B-2507"
    dst = tmp_path / "upload"
    argv = ["push", str(voxtral_lora_out), REPO, "--adapter", "--base-model", hub_base]
    assert main([*argv, "--dry-run", "--output", str(dst)]) == 0
    assert "tekken.json" in {p.name for p in dst.iterdir()}
    meta, text = _card(dst)
    assert "voxtral" in meta["tags"] and meta["license"] == "apache-2.0"
    assert "VoxtralForConditionalGeneration" in text and meta["language"] == ["en"]
    replace = {
        json.dumps(REPO): json.dumps(str(dst)),
        json.dumps(hub_base): json.dumps(base),
        '"audio.wav"': json.dumps(str(speech_file)),
    }
    assert _run_snippet(text, replace, capsys).endswith("\n")

    app_dir = tmp_path / "space"
    assert main(["demo-app", str(voxtral_lora_out), str(app_dir)]) == 0  # merged copy
    audio = (16000, tone(1.0, 300.0))
    bundled = import_demo_app(app_dir / "app.py", monkeypatch, None)
    adapter = import_demo_app(app_dir / "app.py", monkeypatch, str(voxtral_lora_out))
    assert adapter.adapter_base(str(voxtral_lora_out)) == base
    assert isinstance(bundled.transcribe(audio), str)
    assert adapter.transcribe(audio) == bundled.transcribe(audio)
    argv = ["export", str(voxtral_lora_out), "--format", "ct2", "--output", str(tmp_path / "c")]
    assert main(argv) == 2
    assert "not supported for voxtral" in capsys.readouterr().err


def test_the_card_shows_guard_sets_before_and_after(tmp_path: Path) -> None:
    from asrtune.publish.card import guard_table

    guards = {
        "sets": {
            "general": {
                "headline": "wer",
                "wer": 0.12,
                "base_wer": 0.1,
                "change": 0.02,
                "num_samples": 40,
            },
        },
        "max_regression": 0.01,
        "within_limit": False,
    }
    table = guard_table({"wer": 0.05, "guards": guards})
    assert "| general | 40 | 10.00 % | 12.00 % WER | +2.00 points |" in table
    assert "at most 1.0 points worse" in table and "**beyond**" in table
    assert guard_table({"wer": 0.05}) is None
