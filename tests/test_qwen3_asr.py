"""The Qwen3-ASR adapter on a tiny random Qwen3-ASR (the real processor, chat template and
encoder windowing, a 512-token BPE): training rows token by token, the trainer's loss,
full and LoRA training, merging, generation and its output format, the CLI, and the card's
usage code with plain transformers."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

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
from asrtune.models import qwen3_asr as Q
from asrtune.models.losses import summed_token_loss
from asrtune.models.tiny_qwen3_asr import AUDIO_TOKEN, IM_END, make_tiny_qwen3_asr
from asrtune.trainer import AsrTrainer
from asrtune.training_data import admit_rows
from tests.conftest import FAST_TRAINING as FAST
from tests.conftest import make_talkative, tone, write_dataset
from tests.family_helpers import stay_offline

#: What the real Qwen/Qwen3-ASR-*-hf processors render for one audio without a language
#: (transformers' tests/models/qwen3_asr/test_processing_qwen3_asr.py::test_chat_template).
REAL_PROMPT = (
    "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n"
    "<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def tiny_qwen3_asr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_qwen3_asr(tmp_path_factory.mktemp("models") / "tiny-qwen3-asr")


@pytest.fixture(scope="module")
def loaded(tiny_qwen3_asr: Path) -> LoadedModel:
    return load_model(str(tiny_qwen3_asr))


def _batch(loaded: LoadedModel, manifest: Path) -> dict[str, torch.Tensor]:
    examples, skipped = admit_rows(loaded, load_rows(manifest).rows, "transcribe")
    assert not skipped
    data = WindowDataset(loaded, examples, "transcribe", False, 0)
    return Q.collate([data[i] for i in range(len(data))])


def _loss(model_dir: Path, manifest: Path) -> float:
    model = load_model(str(model_dir))
    with torch.no_grad():
        return model.model(**_batch(model, manifest)).loss.item()


def _ids(loaded: LoadedModel, text: str) -> list[int]:
    return loaded.processor.tokenizer.encode(text, add_special_tokens=False)


def test_tiny_checkpoint_loads_with_plain_transformers(tiny_qwen3_asr: Path) -> None:
    from transformers import AutoProcessor, Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor

    processor = AutoProcessor.from_pretrained(str(tiny_qwen3_asr))
    model = Qwen3ASRForConditionalGeneration.from_pretrained(str(tiny_qwen3_asr))
    assert isinstance(processor, Qwen3ASRProcessor)
    assert 10_000 < sum(p.numel() for p in model.parameters()) < 1_000_000
    tokenizer = processor.tokenizer
    assert processor.audio_token == AUDIO_TOKEN
    assert processor.audio_token_id == model.config.audio_token_id
    assert tokenizer.eos_token == IM_END and tokenizer.pad_token == "<|endoftext|>"
    assert set(model.generation_config.eos_token_id) == {
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    }
    messages = [{"role": "user", "content": [{"type": "audio", "path": "x.wav"}]}]
    rendered = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == REAL_PROMPT
    # <asr_text> is an added, not special, token: decoding keeps it and parse_output splits
    answer = tokenizer.encode("language English<asr_text>Hi there.")
    assert tokenizer.convert_tokens_to_ids("<asr_text>") in answer
    answer.append(tokenizer.eos_token_id)
    parsed = processor.decode(answer, return_format="parsed")
    assert parsed == {"language": "English", "transcription": "Hi there."}


def test_tiny_builder_is_seeded_and_leaves_the_callers_rng(tmp_path: Path) -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = load_file(str(make_tiny_qwen3_asr(tmp_path / "a", seed=0) / "model.safetensors"))
    assert torch.equal(torch.random.get_rng_state(), state)
    again = load_file(str(make_tiny_qwen3_asr(tmp_path / "b", seed=0) / "model.safetensors"))
    other = load_file(str(make_tiny_qwen3_asr(tmp_path / "c", seed=1) / "model.safetensors"))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (
        tmp_path / "c" / "tokenizer.json"
    ).read_text()


def test_forced_and_detected_prompts(loaded: LoadedModel) -> None:
    audio = tone(1.0, 300)
    forced, french, detected = (
        loaded.processor.tokenizer.decode(
            Q.transcription_inputs(loaded, [audio], [language])["input_ids"][0]
        )
        for language in ("en", "French", None)
    )
    audio_part = "<|audio_start|>" + AUDIO_TOKEN * 13 + "<|audio_end|>"  # 13 per second
    assert detected == REAL_PROMPT.replace("<|audio_start|><|audio_pad|><|audio_end|>", audio_part)
    assert forced == detected + "language English<asr_text>"
    assert french == detected + "language French<asr_text>"
    assert Q.language_name("english") == "English" and Q.language_name("YUE") == "Cantonese"
    with pytest.raises(AsrtuneError, match="does not speak"):
        Q.language_name("klingon")


def test_collated_batch_token_by_token(loaded: LoadedModel, tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "d", 3, language=None)
    rows = load_rows(manifest).rows
    rows = [replace(row, language=lang) for row, lang in zip(rows, ["en", "fr", "de"], strict=True)]
    examples, skipped = admit_rows(loaded, rows, "transcribe")
    assert not skipped
    items = [Q.window_item(loaded, [ex], "transcribe") for ex in examples]
    batch = Q.collate(items)
    tokenizer = loaded.processor.tokenizer
    eos = tokenizer.eos_token_id
    longest = max(len(item["input_ids"]) for item in items)
    frames = batch["input_features"].shape[-1]
    assert batch["input_ids"].shape == batch["labels"].shape == (3, longest)
    for i, (row, name) in enumerate(zip(rows, ["English", "French", "German"], strict=True)):
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        # the audio placeholders are as many as the encoder's outputs for this row
        with torch.no_grad():
            audio = loaded.model.get_audio_features(
                batch["input_features"][i : i + 1], batch["input_features_mask"][i : i + 1]
            ).pooler_output
        n_audio = audio.shape[0]
        assert n_audio == Q.audio_token_count(loaded, int(row.duration * 16000)) > 13
        head = "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|audio_start|>"
        tail = f"<|audio_end|><|im_end|>\n<|im_start|>assistant\nlanguage {name}<asr_text>"
        prompt = [*_ids(loaded, head), *[loaded.processor.audio_token_id] * n_audio]
        prompt += _ids(loaded, tail)
        text = _ids(loaded, row.text)
        n = len(prompt) + len(text) + 1
        assert ids[:n] == [*prompt, *text, eos]  # prompt (language forced), transcript, EOS
        assert labels[:n] == [-100] * len(prompt) + [*text, eos]  # the prompt is masked
        assert ids[n:] == [Q.PAD_TOKEN_ID] * (longest - n) and labels[n:] == [-100] * (longest - n)
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (longest - n)
        m = items[i]["input_features"].shape[-1]  # each row's own frames, zeros after
        assert torch.equal(batch["input_features"][i, :, :m], items[i]["input_features"])
        assert not batch["input_features"][i, :, m:].any()
        mask = batch["input_features_mask"][i].tolist()
        assert mask[:m] == items[i]["input_features_mask"].tolist() and mask[m:] == [0] * (
            frames - m
        )
    with pytest.raises(AsrtuneError, match="language"):  # no language: no labels
        Q.encode_labels(loaded, ["hi"], None, "transcribe")
    with pytest.raises(AsrtuneError, match="transcribe"):
        Q.encode_labels(loaded, ["hi"], "en", "translate")
    with pytest.raises(AsrtuneError, match="timestamps"):
        Q.encode_labels(loaded, ["hi"], "en", "transcribe", [(0.0, 1.0)])


def test_trainer_loss_is_the_models_own_loss_per_token(loaded: LoadedModel, tmp_path: Path) -> None:
    batch = _batch(loaded, write_dataset(tmp_path / "d", 3))
    # the trainer's loss path (AsrTrainer._summed_loss: the model without labels, then the
    # token loss with the family's label shift), without building a whole Trainer
    trainer = SimpleNamespace(loaded=loaded, model=loaded.model)
    with torch.no_grad():
        own = loaded.model(**batch).loss  # transformers' causal-LM loss, mean per token
        summed, count, outputs = AsrTrainer._summed_loss(trainer, loaded.model, batch)
    assert count == batch["labels"].ne(-100).sum()  # every label token (the prompt comes first)
    assert torch.allclose(summed / count, own, rtol=1e-5)
    unshifted, _ = summed_token_loss(outputs["logits"], batch["labels"], shift=False)
    assert not torch.allclose(unshifted / count, own, rtol=1e-3)


def test_lora_targets_only_the_language_model(loaded: LoadedModel) -> None:
    from peft import LoraConfig, get_peft_model

    base = load_model(str(loaded.source)).model
    targets = Q.default_lora_targets(freeze_encoder=False)
    model = get_peft_model(base, LoraConfig(r=2, target_modules=targets, task_type="CAUSAL_LM"))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if "lora_A" in n}
    assert adapted and all(".language_model." in n for n in adapted)
    assert {n.rsplit(".", 1)[-1] for n in adapted} == set(Q.LM_LORA_TARGETS)
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)


def test_lora_training_lowers_loss_leaves_the_base_and_merges(
    tiny_qwen3_asr: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lora"
    args = ["--model", str(tiny_qwen3_asr), "--train-manifest", str(dataset)]
    args += ["--output_dir", str(out), "--lora", "--lora_r", "8", "--merge"]
    args += ["--num_train_epochs", "4", "--learning_rate", "1e-2", *FAST]
    # the final evaluation generates with the PeftModel, as evaluation during training does
    args += ["--eval-manifest", str(dataset), "--max_eval_samples", "2"]
    args += ["--generation_max_length", "4"]
    assert main(["train", *args]) == 0
    assert json.loads((out / "eval_results.json").read_text())["num_samples"] == 2
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert adapter and all(".language_model." in k and "lora_" in k for k in adapter)
    base = load_file(str(tiny_qwen3_asr / "model.safetensors"))
    merged = load_file(str(out / "merged" / "model.safetensors"))
    untouched = [k for k in base if not re.search(r"language_model\..*_proj\.weight$", k)]
    assert any("audio_tower" in k for k in untouched)
    assert all(torch.equal(base[k], merged[k]) for k in untouched)  # audio tower, norms, ...
    assert any(not torch.equal(base[k], merged[k]) for k in base if "q_proj" in k)
    assert _loss(out, dataset) < _loss(tiny_qwen3_asr, dataset) - 0.3
    # `asrtune merge` gives the model `train --merge` wrote
    again = tmp_path / "merged-again"
    assert main(["merge", str(out), str(again)]) == 0
    remerged = load_file(str(again / "model.safetensors"))
    assert remerged.keys() == merged.keys()
    assert all(torch.allclose(remerged[k], merged[k]) for k in merged)
    assert load_model(str(again)).family == "qwen3_asr"


def test_frozen_audio_encoder_stays_frozen(
    tiny_qwen3_asr: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "frozen"
    args = ["--model", str(tiny_qwen3_asr), "--train-manifest", str(dataset), "--output_dir"]
    args += [str(out), "--freeze-audio-tower", "--num_train_epochs", "1"]
    args += ["--learning_rate", "1e-3", *FAST]
    assert main(["train", *args]) == 0
    before = load_file(str(tiny_qwen3_asr / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    frozen = [k for k in before if "audio_tower" in k or "multi_modal_projector" in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in before if "language_model" in k)


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


def _scripted(loaded: LoadedModel, tokens: list[int], *args, **kwargs) -> tuple[list, int]:
    script = _Script(tokens)
    hook = loaded.model.lm_head.register_forward_hook(script)
    try:
        texts = Q.generate(loaded, *args, **kwargs)
    finally:
        hook.remove()
    return texts, script.calls


def test_generation_stops_at_eos_and_returns_only_the_transcript(loaded: LoadedModel) -> None:
    eos = loaded.processor.tokenizer.eos_token_id
    words = _ids(loaded, "Hello world")
    audios = [tone(1.0, 300), tone(2.0, 400)]
    # language forced: the model writes the transcript only
    texts, calls = _scripted(loaded, [*words, eos, *words], audios, "en", "transcribe")
    assert texts == ["Hello world", "Hello world"] and not any(t.capped for t in texts)
    assert calls == len(words) + 1  # stopped at EOS, far below the token budget
    # detected: the model names the language first; only the transcript comes back
    header = _ids(loaded, "language English<asr_text>")
    texts, calls = _scripted(loaded, [*header, *words, eos], audios, None, "transcribe")
    assert texts == ["Hello world", "Hello world"] and calls == len(header) + len(words) + 1
    # the token cap: capped, and a cut language line is no transcript
    texts, _ = _scripted(loaded, words * 20, audios[:1], "en", "transcribe", max_new_tokens=3)
    assert texts[0].capped and texts[0] == loaded.processor.tokenizer.decode(words[:3])
    looping = header[:-1] * 20  # "language Englishlanguage English..." never gets to <asr_text>
    texts, _ = _scripted(loaded, looping, audios[:1], None, "transcribe", max_new_tokens=1)
    assert texts[0].capped and texts[0] == ""
    assert Q.transcript_of("language German<asr_text>Guten Tag.", forced=False) == "Guten Tag."
    assert Q.transcript_of("Language matters.", forced=True) == "Language matters."


def test_batch_and_beam_search_keep_each_rows_audio(tiny_qwen3_asr: Path) -> None:
    loaded = load_model(str(tiny_qwen3_asr))
    make_talkative(loaded.model)  # outputs that differ from audio to audio
    # whole seconds ending in silence: the processor's batch features then equal each row's
    # own (a batch pads a partial 1-s chunk with silence's log-mel, a row alone with zeros)
    silence = np.zeros(1600, np.float32)
    audios = [
        np.concatenate([tone(s - 0.1, f), silence]) for s, f in [(2, 300), (1, 500), (3, 700)]
    ]
    with torch.no_grad():  # left-padded prompts, right-padded features: each row's own scores
        together = loaded.model(**Q.transcription_inputs(loaded, audios, ["en"] * 3)).logits
        for i, audio in enumerate(audios):
            own = loaded.model(**Q.transcription_inputs(loaded, [audio], ["en"])).logits[0, -1]
            assert torch.allclose(together[i, -1], own, atol=1e-4)
    for language, beams in (("en", 2), (None, 3)):
        batch = Q.generate(
            loaded, audios, language, "transcribe", num_beams=beams, max_new_tokens=5
        )
        alone = [
            Q.generate(loaded, [a], language, "transcribe", num_beams=beams, max_new_tokens=5)[0]
            for a in audios
        ]
        assert batch == alone and len(set(batch)) > 1


def test_long_audio_is_generated_in_pieces(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Q, "MAX_GENERATE_SECONDS", 1.0)
    eos = loaded.processor.tokenizer.eos_token_id
    words = _ids(loaded, "Hello")
    texts, _ = _scripted(
        loaded, [*words, eos], [tone(2.5, 300), tone(0.5, 400)], "en", "transcribe"
    )
    assert texts == ["Hello Hello Hello", "Hello"]  # 3 pieces + 1, in one batch


def test_cli_make_tiny_train_eval_transcribe(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "tiny-qa"
    assert main(["make-tiny", "--family", "qwen3_asr", str(model)]) == 0
    assert (model / "chat_template.jinja").is_file() and load_model(
        str(model)
    ).family == "qwen3_asr"
    out = tmp_path / "full"
    args = ["--model", str(model), "--train-manifest", str(dataset), "--output_dir", str(out)]
    assert main(["train", *args, "--num_train_epochs", "4", "--learning_rate", "3e-3", *FAST]) == 0
    assert (out / "processor_config.json").is_file() and (out / "tokenizer.json").is_file()
    assert _loss(out, dataset) < _loss(model, dataset) - 0.5  # a few full steps
    capsys.readouterr()
    report = tmp_path / "report.json"
    args = ["eval", "--model", str(out), "--manifest", str(dataset), "--output", str(report)]
    assert main([*args, "--max-samples", "3", "--max-new-tokens", "4"]) == 0
    data = json.loads(report.read_text())
    rows = [json.loads(x) for x in report.with_name("report.utterances.jsonl").open()]
    assert data["num_samples"] == len(rows) == 3
    assert not any("<asr_text>" in r["hyp"] for r in rows)
    score, _ = score_corpus([r["ref"] for r in rows], [r["hyp"] for r in rows], ["en"] * 3)
    assert (data["wer"], data["cer"]) == (score.wer, score.cer)
    capsys.readouterr()
    files = sorted(str(p) for p in (dataset.parent / "audio").glob("*.wav"))[:2]
    args = ["transcribe", "--model", str(out), *files, "--max-new-tokens", "4"]
    assert main([*args, "--num-beams", "2"]) == 0  # no language: the model names it
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == files
    with pytest.raises(AsrtuneError, match="quantization"):
        load_model(str(model), quantization="4bit")


def test_push_dry_run_card_runs_with_plain_transformers(
    tiny_qwen3_asr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    stay_offline(monkeypatch)
    speech = tmp_path / "stereo.wav"
    sf.write(speech, tone(1.2, 330.0, rate=22050, channels=2), 22050)
    dst = tmp_path / "upload"
    repo, hub_base = "someone/tiny-qwen3-asr-ft", "Qwen/Qwen3-ASR-0.6B-hf"
    argv = ["push", str(tiny_qwen3_asr), repo, "--base-model", hub_base, "--language", "en"]
    assert main([*argv, "--dry-run", "--output", str(dst)]) == 0
    text = (dst / "README.md").read_text(encoding="utf-8")
    assert "Qwen3ASRForConditionalGeneration" in text and "apache-2.0" in text
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    for old, new in {
        json.dumps(repo): json.dumps(str(dst)),
        '"audio.wav"': json.dumps(str(speech)),
        "max_new_tokens=500": "max_new_tokens=20",
    }.items():
        assert old in code, old
        code = code.replace(old, new)
    loaded = load_model(str(tiny_qwen3_asr))
    eos = loaded.processor.tokenizer.eos_token_id
    words = _ids(loaded, "Hello world")
    script = _Script([*words, eos])  # the same model, scripted: plain transformers decodes it
    from transformers import Qwen3ASRForConditionalGeneration

    original = Qwen3ASRForConditionalGeneration.from_pretrained

    def scripted(*args, **kwargs):
        model = original(*args, **kwargs)
        model.lm_head.register_forward_hook(script)
        return model

    monkeypatch.setattr(Qwen3ASRForConditionalGeneration, "from_pretrained", scripted)
    capsys.readouterr()
    exec(compile(code, "model_card_usage", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip() == "Hello world"
    # without a language the model names it first; the card's code prints the transcript
    assert 'language = "en"' in code
    script.tokens, script.calls = [*_ids(loaded, "language English<asr_text>"), *words, eos], 0
    code = code.replace('language = "en"', "language = None")
    exec(compile(code, "model_card_usage", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip() == "Hello world"
