"""The Voxtral adapter on a tiny random Voxtral (0.8-s chunks, 10 audio tokens per chunk):
training rows token by token, multi-chunk batches, LoRA/freezing, generation, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from asrtune.cli import main
from asrtune.data.rows import load_rows
from asrtune.dataset import WindowDataset
from asrtune.errors import AsrtuneError
from asrtune.metrics import score_corpus
from asrtune.models import LoadedModel, load_model
from asrtune.models import voxtral as V
from asrtune.models.tiny_voxtral import AUDIO_TOKEN_ID, make_tiny_voxtral
from asrtune.training_data import admit_rows
from tests.conftest import FAST_TRAINING as FAST
from tests.conftest import tone, write_dataset

BOS, EOS, INST, END_INST, BEGIN_AUDIO, TRANSCRIBE, PAD = 1, 2, 3, 4, 25, 34, 11


@pytest.fixture(scope="module")
def tiny_voxtral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_voxtral(tmp_path_factory.mktemp("models") / "tiny-voxtral")


@pytest.fixture(scope="module")
def loaded(tiny_voxtral: Path) -> LoadedModel:
    return load_model(str(tiny_voxtral))


def _examples(loaded: LoadedModel, manifest: Path) -> list[V.Example]:
    examples, skipped = admit_rows(loaded, load_rows(manifest).rows, "transcribe")
    assert not skipped
    return examples


def _batch(loaded: LoadedModel, manifest: Path) -> dict[str, torch.Tensor]:
    data = WindowDataset(loaded, _examples(loaded, manifest), "transcribe", True, 0)
    return V.collate([data[i] for i in range(len(data))])


def _loss(model_dir: Path, manifest: Path) -> float:
    model = load_model(str(model_dir))
    with torch.no_grad():
        return model.model(**_batch(model, manifest)).loss.item()


def test_tiny_processor_matches_the_encoder(loaded: LoadedModel) -> None:
    assert V.chunk_seconds(loaded) == pytest.approx(0.8)
    assert V.audio_tokens_per_chunk(loaded.model) == 10
    inputs = V.transcription_inputs(loaded, [tone(2.0, 300)], ["en"])
    ids = inputs["input_ids"][0].tolist()
    assert inputs["input_features"].shape == (3, 128, 80)  # 2 s → three 0.8-s chunks
    assert ids.count(AUDIO_TOKEN_ID) == 30
    with torch.no_grad():  # the model accepts them: one embedding per placeholder
        assert loaded.model(**inputs).logits.shape[:2] == (1, len(ids))


def test_collated_batch_token_by_token(loaded: LoadedModel, tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "d", 2, language=None, seconds=1.0)
    examples = _examples(loaded, manifest)
    examples[0] = replace(examples[0], language="en")  # row 0 has a language, row 1 not
    data = WindowDataset(loaded, examples, "transcribe", pack=False, seed=0)
    items = [data[0], data[1]]
    batch = V.collate(items)
    tokenizer = loaded.processor.tokenizer
    lang_en = tokenizer.encode("lang:en", add_special_tokens=False)
    longest = max(len(item["input_ids"]) for item in items)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, longest)
    for i, example in enumerate(examples):
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        mask = batch["attention_mask"][i].tolist()
        text = tokenizer.encode(example.row.text, add_special_tokens=False)
        n_audio = 10 * int(np.ceil(example.row.duration / 0.8))
        prompt = [BOS, INST, BEGIN_AUDIO, *[AUDIO_TOKEN_ID] * n_audio, END_INST]
        prompt += [*(lang_en if example.language else []), TRANSCRIBE]
        n = len(prompt) + len(text) + 1
        assert ids[:n] == [*prompt, *text, EOS]  # prompt, transcript, EOS
        assert labels[:n] == [-100] * len(prompt) + [*text, EOS]  # prompt masked
        assert ids[n:] == [PAD] * (longest - n) and labels[n:] == [-100] * (longest - n)
        assert mask == [1] * n + [0] * (longest - n)
    assert tokenizer.decode(batch["input_ids"][1].tolist()).count("lang:") == 0
    # chunks of row 0, then row 1's
    assert torch.equal(batch["input_features"], torch.cat([it["input_features"] for it in items]))


def test_multi_chunk_batch_equals_rows_one_by_one(loaded: LoadedModel, tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "d", 3, seconds=1.0)  # 1.0, 1.1, 1.2 s: 2 chunks each
    sf.write(tmp_path / "d" / "audio" / "clip1.wav", tone(2.5, 500), 16000)  # 4 chunks
    data = WindowDataset(loaded, _examples(loaded, manifest), "transcribe", False, 0)
    items = [data[i] for i in range(3)]
    assert [len(it["input_features"]) for it in items] == [2, 4, 2]
    with torch.no_grad():
        batch = loaded.model(**V.collate(items)).logits
        for i, item in enumerate(items):
            alone = loaded.model(**V.collate([item])).logits[0]
            assert torch.allclose(batch[i, : len(alone)], alone, atol=1e-4)


def test_short_utterances_are_packed_into_one_chunk(loaded: LoadedModel, tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "d", 4)
    for i in range(4):  # 0.15 s + 0.4 s gap + 0.15 s fit one 0.8-s chunk, a third does not
        sf.write(tmp_path / "d" / "audio" / f"clip{i}.wav", tone(0.15, 300 + 50 * i), 16000)
    examples = _examples(loaded, manifest)
    data = WindowDataset(loaded, examples, "transcribe", pack=True, seed=0)
    assert len(data) == 2 and all(len(w) == 2 for w in data.windows)
    item = data[0]
    texts = " ".join(ex.row.text for ex in data.windows[0])
    target = loaded.processor.tokenizer.encode(texts, add_special_tokens=False)
    assert [t for t in item["labels"] if t != -100] == [*target, EOS]
    assert item["input_features"].shape[0] == 1  # both in one chunk


def test_lora_targets_only_the_language_model(loaded: LoadedModel) -> None:
    from peft import LoraConfig, get_peft_model

    base = load_model(str(loaded.source)).model
    targets = V.default_lora_targets(freeze_encoder=False)
    model = get_peft_model(base, LoraConfig(r=2, target_modules=targets, task_type="CAUSAL_LM"))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if "lora_A" in n}
    assert adapted and all(".language_model." in n for n in adapted)
    kinds = {n.rsplit(".", 1)[-1] for n in adapted}
    assert kinds == set(V.LM_LORA_TARGETS)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n in trainable)


def test_lora_training_lowers_loss_and_leaves_the_audio_tower(
    tiny_voxtral: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lora"
    args = ["--model", str(tiny_voxtral), "--train-manifest", str(dataset)]
    args += ["--output_dir", str(out), "--lora", "--lora_r", "8", "--merge"]
    args += ["--num_train_epochs", "4", "--learning_rate", "1e-2", *FAST]
    # the final evaluation generates with the PeftModel, as evaluation during training does
    args += ["--eval-manifest", str(dataset), "--max_eval_samples", "2"]
    args += ["--generation_max_length", "4"]
    assert main(["train", *args]) == 0
    assert json.loads((out / "eval_results.json").read_text())["num_samples"] == 2
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert adapter and all(".language_model." in k for k in adapter)
    base, merged = (
        load_file(str(tiny_voxtral / "model.safetensors")),
        load_file(str(out / "merged" / "model.safetensors")),
    )
    tower = [k for k in base if "audio_tower" in k or "multi_modal_projector" in k]
    assert tower and all(torch.equal(base[k], merged[k]) for k in tower)
    assert any(not torch.equal(base[k], merged[k]) for k in base if "q_proj" in k)
    assert _loss(out, dataset) < _loss(tiny_voxtral, dataset) - 0.3
    results = json.loads((out / "train_results.json").read_text())
    assert results["utterances"] == 8 and results["skipped_rows"] == 0


def test_full_finetune_with_frozen_audio_tower(
    tiny_voxtral: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "full"
    args = ["--model", str(tiny_voxtral), "--train-manifest", str(dataset), "--output_dir"]
    args += [str(out), "--freeze-audio-tower", "--num_train_epochs", "1"]
    args += ["--learning_rate", "1e-3", *FAST]
    assert main(["train", *args]) == 0
    before, after = (
        load_file(str(tiny_voxtral / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    frozen = [k for k in before if "audio_tower" in k or "multi_modal_projector" in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in before if "language_model" in k)
    assert (out / "tekken.json").is_file()


class _Script:
    """Forces the next tokens (the same for every row) by rewriting lm_head's output."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens, self.calls = tokens, 0

    def __call__(self, module: torch.nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        forced = torch.full_like(logits[:, -1], -1e4)
        forced[:, self.tokens[min(self.calls, len(self.tokens) - 1)]] = 1e4
        self.calls += 1
        logits = logits.clone()
        logits[:, -1] = forced
        return logits


def test_generation_stops_at_eos_and_decodes_only_new_tokens(loaded: LoadedModel) -> None:
    tokenizer = loaded.processor.tokenizer
    words = tokenizer.encode("Hello world", add_special_tokens=False)
    script = _Script([*words, EOS, *words])
    hook = loaded.model.lm_head.register_forward_hook(script)
    try:
        texts = V.generate(loaded, [tone(1.0, 300), tone(2.0, 400)], "en", "transcribe")
    finally:
        hook.remove()
    assert texts == ["Hello world", "Hello world"]
    assert script.calls == len(words) + 1  # stopped at EOS, far below the token budget


def test_beam_search_keeps_each_rows_chunks_together(loaded: LoadedModel) -> None:
    audios = [tone(2.4, 300), tone(0.7, 500), tone(1.5, 700)]  # 3, 1 and 2 chunks
    batch = V.generate(loaded, audios, None, "transcribe", num_beams=2, max_new_tokens=5)
    alone = [
        V.generate(loaded, [a], None, "transcribe", num_beams=2, max_new_tokens=5)[0]
        for a in audios
    ]
    assert batch == alone


def test_generate_in_bf16_autocast(loaded: LoadedModel) -> None:
    """Audio embeddings computed in bf16 must still fill the float32 prompt embeddings."""
    seen: list[torch.dtype] = []
    hook = loaded.model.lm_head.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    try:
        texts = V.generate(loaded, [tone(1.2, 300)], "en", "transcribe", 1, 3, precision="bf16")
    finally:
        hook.remove()
    assert isinstance(texts[0], str) and seen and set(seen) == {torch.bfloat16}


def test_user_errors(
    loaded: LoadedModel, dataset: Path, tiny_whisper: Path, tmp_path: Path, capsys
) -> None:
    with pytest.raises(AsrtuneError, match="not supported for whisper"):
        load_model(str(tiny_whisper), quantization="4bit")
    assert V.language_code("English") == "en" and V.language_code("FR") == "fr"
    with pytest.raises(AsrtuneError, match="ISO 639-1"):
        V.language_code("xx")
    with pytest.raises(AsrtuneError, match="transcribe"):
        V.encode_labels(loaded, ["hi"], None, "translate")
    if not torch.cuda.is_available():
        with pytest.raises(AsrtuneError, match="CUDA GPU"):
            V.quantization_config("4bit")
    base = ["train", "--model", str(loaded.source), "--train-manifest", str(dataset)]
    base += ["--output_dir", str(tmp_path / "o"), "--report_to", "none"]
    assert main([*base, "--quantization", "4bit"]) == 2
    assert "add --lora" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*base, "--lora", "--quantization", "8bit"]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err
    unlabelled = write_dataset(tmp_path / "nl", 2, language=None)
    base[base.index(str(dataset))] = str(unlabelled)
    assert main([*base, "--language", "klingon"]) == 2
    assert "ISO 639-1" in capsys.readouterr().err


def test_cli_make_tiny_eval_transcribe(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "tiny-vx"
    assert main(["make-tiny", "--family", "voxtral", str(model)]) == 0
    assert (model / "tekken.json").is_file() and (model / "model.safetensors").is_file()
    assert main(["make-tiny", "--family", "whisper", str(tmp_path / "tiny-w")]) == 0
    assert load_model(str(tmp_path / "tiny-w")).family == "whisper"
    capsys.readouterr()
    report = tmp_path / "report.json"
    args = ["eval", "--model", str(model), "--manifest", str(dataset), "--output", str(report)]
    assert main([*args, "--max-samples", "3", "--max-new-tokens", "4"]) == 0
    data = json.loads(report.read_text())
    rows = [json.loads(x) for x in report.with_name("report.utterances.jsonl").open()]
    assert data["num_samples"] == len(rows) == 3
    score, _ = score_corpus([r["ref"] for r in rows], [r["hyp"] for r in rows], ["en"] * 3)
    assert (data["wer"], data["cer"]) == (score.wer, score.cer)
    capsys.readouterr()
    files = sorted(str(p) for p in (dataset.parent / "audio").glob("*.wav"))[:2]
    args = ["transcribe", "--model", str(model), *files, "--max-new-tokens", "4"]
    assert main([*args, "--language", "en", "--num-beams", "2"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == files
