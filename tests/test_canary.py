"""The Canary adapter on a tiny random Canary (the real processor classes, a chat template
that renders Canary-2's decoder prompt, a 320-piece BPE laid out like canary-1b-v2's):
training rows token by token against the processor's own labels, the trainer's loss,
generation, full and LoRA training from the CLI, eval, and the card's usage code with plain
transformers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from asrtune.cli import main
from asrtune.data.rows import load_rows
from asrtune.dataset import WindowDataset
from asrtune.errors import AsrtuneError
from asrtune.models import FAMILIES, LoadedModel, load_model
from asrtune.models import canary as C
from asrtune.models.losses import summed_token_loss
from asrtune.models.tiny_canary import make_tiny_canary, tiny_canary_config
from asrtune.trainer import AsrTrainer
from asrtune.training_data import admit_rows
from tests.conftest import make_talkative, tone, write_dataset
from tests.family_helpers import run_card_usage, stay_offline, train_from_cli

PROMPT = (
    "<|startofcontext|><|startoftranscript|><|emo:undefined|><|{src}|><|{tgt}|>"
    "<|pnc|><|noitn|><|notimestamp|><|nodiarize|>"
)


@pytest.fixture(scope="module")
def tiny_canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_canary(tmp_path_factory.mktemp("models") / "tiny-canary")


@pytest.fixture(scope="module")
def loaded(tiny_canary: Path) -> LoadedModel:
    return load_model(str(tiny_canary))


def _ids(loaded: LoadedModel, text: str) -> list[int]:
    return loaded.processor.tokenizer.encode(text, add_special_tokens=False)


def _batch(loaded: LoadedModel, manifest: Path) -> dict[str, torch.Tensor]:
    examples, skipped = admit_rows(loaded, load_rows(manifest).rows, "transcribe")
    assert not skipped
    data = WindowDataset(loaded, examples, "transcribe", False, 0)
    return C.collate([data[i] for i in range(len(data))])


def _loss(model_dir: Path, manifest: Path) -> float:
    model = load_model(str(model_dir))
    with torch.no_grad():
        return model.model(**_batch(model, manifest)).loss.item()


def test_tiny_checkpoint_loads_and_generates_with_plain_transformers(tiny_canary: Path) -> None:
    from transformers import (
        AutoModelForSpeechSeq2Seq,
        AutoProcessor,
        CanaryForConditionalGeneration,
        CanaryProcessor,
    )

    processor = AutoProcessor.from_pretrained(str(tiny_canary))
    model = AutoModelForSpeechSeq2Seq.from_pretrained(str(tiny_canary))
    assert isinstance(processor, CanaryProcessor)
    assert isinstance(model, CanaryForConditionalGeneration)
    assert 10_000 < sum(p.numel() for p in model.parameters()) < 1_000_000
    tokenizer = processor.tokenizer
    # the special ids of canary-1b-v2's config.json
    assert (model.config.pad_token_id, model.config.eos_token_id) == (2, 3)
    assert (model.config.bos_token_id, model.config.decoder_start_token_id) == (4, 7)
    assert tokenizer.convert_ids_to_tokens([2, 3, 4, 7]) == [
        "<pad>",
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|startofcontext|>",
    ]
    inputs = processor.apply_transcription_request(
        audio=[tone(1.0, 300), tone(2.0, 400)], source_language=["de", "en"], target_language="en"
    )
    assert tokenizer.decode(inputs["decoder_input_ids"][0]) == PROMPT.format(src="de", tgt="en")
    ids = model.generate(**inputs, max_new_tokens=3)
    assert ids.shape == (2, 9 + 3)
    text = "the cat sat"
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_tiny_builder_is_seeded_and_leaves_the_callers_rng(tmp_path: Path) -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = load_file(str(make_tiny_canary(tmp_path / "a", seed=0) / "model.safetensors"))
    assert torch.equal(torch.random.get_rng_state(), state)
    again = load_file(str(make_tiny_canary(tmp_path / "b", seed=0) / "model.safetensors"))
    other = load_file(str(make_tiny_canary(tmp_path / "c", seed=1) / "model.safetensors"))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_1b_v2_size_matches_the_real_parameter_count() -> None:
    from transformers import CanaryConfig, CanaryForConditionalGeneration

    def count(config: object) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in CanaryForConditionalGeneration(config).parameters())

    # transformers' CanaryConfig defaults are canary-1b-v2's config.json; NVIDIA's "978M"
    # counts the output layer apart from the tied embeddings (+ 16384 x 1024)
    assert count(tiny_canary_config("1b-v2")) == count(CanaryConfig()) == 962_155_520
    assert 962_155_520 + 16384 * 1024 == 978_932_736
    assert FAMILIES["canary"].tiny_sizes == ("tiny", "1b-v2")


def test_prompts_name_the_spoken_and_the_written_language(loaded: LoadedModel) -> None:
    decode = loaded.processor.tokenizer.decode
    audio = tone(1.0, 300)
    for language, task, src, tgt in [
        ("en", "transcribe", "en", "en"),
        ("German", "transcribe", "de", "de"),
        ("fr", "translate", "fr", "en"),
        (None, "transcribe", "en", "en"),  # the processor's default
    ]:
        ids = C.transcription_inputs(loaded, [audio], language, task)["decoder_input_ids"][0]
        assert decode(ids) == PROMPT.format(src=src, tgt=tgt)
    assert C.language_code("UK") == "uk" and C.language_code("ukrainian") == "uk"
    with pytest.raises(AsrtuneError, match="does not speak"):
        C.language_code("ja")
    with pytest.raises(AsrtuneError, match="cannot"):
        C.encode_labels(loaded, ["hi"], "en", "summarize")


def test_collated_batch_token_by_token_against_the_processors_labels(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    manifest = write_dataset(tmp_path / "d", 3, language=None)
    rows = load_rows(manifest).rows
    languages = ["en", "fr", "de"]
    rows = [replace(row, language=lang) for row, lang in zip(rows, languages, strict=True)]
    examples, skipped = admit_rows(loaded, rows, "translate")
    assert not skipped
    items = [C.window_item(loaded, [ex], "translate") for ex in examples]
    batch = C.collate(items)
    processor, start = loaded.processor, loaded.model.config.decoder_start_token_id
    longest = max(len(item["labels"]) for item in items)
    frames = batch["input_features"].shape[1]
    assert batch["decoder_input_ids"].shape == batch["labels"].shape == (3, longest)
    for i, (row, language) in enumerate(zip(rows, languages, strict=True)):
        audio, _ = sf.read(row.audio_path, dtype="float32")
        # the processor's own training item: the conversation with the answer
        conversation = [
            {
                "role": "user",
                "content": [
                    {"type": "audio", "audio": audio},
                    {"type": "text", "source_language": language, "target_language": "en"},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": row.text}]},
        ]
        text = processor.apply_chat_template(conversation, tokenize=False)
        own = processor(audio=[audio], text=[text], output_labels=True)
        own_inputs, own_labels = own["decoder_input_ids"][0].tolist(), own["labels"][0].tolist()
        n = len(own_inputs)
        ids, labels = batch["decoder_input_ids"][i].tolist(), batch["labels"][i].tolist()
        assert ids[:n] == own_inputs  # prompt + transcript
        assert labels[:8] == [-100] * 8  # the prompt (after its first token) is masked
        assert labels[8:n] == own_labels[8:]  # then the transcript and <|endoftext|>, as theirs
        assert own_labels[-1] == loaded.processor.tokenizer.eos_token_id
        assert labels[8:n] == [*_ids(loaded, row.text), own_labels[-1]]
        assert ids[n:] == [start] * (longest - n) and labels[n:] == [-100] * (longest - n)
        assert batch["decoder_attention_mask"][i].tolist() == [1] * n + [0] * (longest - n)
        m = own["input_features"].shape[1]  # the processor's features, zeros after them
        assert torch.allclose(batch["input_features"][i, :m], own["input_features"][0])
        assert not batch["input_features"][i, m:].any()
        mask = own["attention_mask"][0].tolist()
        assert batch["attention_mask"][i].tolist() == mask + [0] * (frames - m)
    with pytest.raises(AsrtuneError, match="language"):  # no language: no prompt
        C.encode_labels(loaded, ["hi"], None, "transcribe")
    with pytest.raises(AsrtuneError, match="timestamps"):
        C.encode_labels(loaded, ["hi"], "en", "transcribe", [(0.0, 1.0)])


def test_trainer_loss_is_the_models_own_loss_per_token(tiny_canary: Path, tmp_path: Path) -> None:
    loaded = load_model(str(tiny_canary))
    make_talkative(loaded.model)  # peaked logits: a wrong label shift shows
    batch = _batch(loaded, write_dataset(tmp_path / "d", 3))  # padded: 3 lengths
    assert not batch["decoder_attention_mask"].all()
    trainer = SimpleNamespace(loaded=loaded, model=loaded.model)
    with torch.no_grad():
        own = loaded.model(**batch).loss  # transformers' loss, mean per label token
        summed, count, outputs = AsrTrainer._summed_loss(trainer, loaded.model, batch)
    assert count == batch["labels"].ne(-100).sum()
    assert torch.allclose(summed / count, own, rtol=1e-5)
    shifted, _ = summed_token_loss(outputs["logits"], batch["labels"], shift=True)
    assert not torch.allclose(shifted / count, own, rtol=1e-3)


class _Script:
    """Forces the next tokens (the same for every row) by rewriting proj_out's output."""

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
    hook = loaded.model.proj_out.register_forward_hook(script)
    try:
        texts = C.generate(loaded, *args, **kwargs)
    finally:
        hook.remove()
    return texts, script.calls


def test_generation_stops_at_eos_is_capped_and_long_audio_goes_in_pieces(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    eos = loaded.processor.tokenizer.eos_token_id
    words = _ids(loaded, "Hello world")
    audios = [tone(1.0, 300), tone(2.0, 400)]
    texts, calls = _scripted(loaded, [*words, eos, *words], audios, "en", "transcribe")
    assert texts == ["Hello world", "Hello world"] and not any(t.capped for t in texts)
    assert calls == len(words) + 1  # stopped at EOS, far below the token budget
    texts, calls = _scripted(loaded, words * 20, audios[:1], "de", "translate", max_new_tokens=3)
    assert texts[0].capped and calls == 3
    assert texts[0] == loaded.processor.tokenizer.decode(words[:3])
    texts, _ = _scripted(loaded, [eos], audios[:1], "en", "transcribe")
    assert texts == [""] and not texts[0].capped  # silence may say nothing
    monkeypatch.setattr(C, "MAX_AUDIO_SECONDS", 1.0)
    hello = _ids(loaded, "Hello")
    texts, _ = _scripted(
        loaded, [*hello, eos], [tone(2.5, 300), tone(0.5, 400)], "en", "transcribe"
    )
    assert texts == ["Hello Hello Hello", "Hello"]  # 3 pieces + 1, in one batch


def test_batch_and_beam_search_keep_each_rows_audio(tiny_canary: Path) -> None:
    loaded = load_model(str(tiny_canary))
    make_talkative(loaded.model)
    audios = [tone(1.3, 300), tone(0.7, 500), tone(2.1, 700)]
    for beams in (1, 2):
        batch = C.generate(loaded, audios, "en", "transcribe", num_beams=beams, max_new_tokens=5)
        alone = [
            C.generate(loaded, [a], "en", "transcribe", num_beams=beams, max_new_tokens=5)[0]
            for a in audios
        ]
        assert batch == alone and len(set(batch)) > 1


def test_lora_targets(loaded: LoadedModel) -> None:
    from peft import LoraConfig, get_peft_model

    for frozen, parts in ((True, {"decoder"}), (False, {"decoder", "encoder"})):
        base = load_model(str(loaded.source)).model
        targets = C.default_lora_targets(freeze_encoder=frozen)
        model = get_peft_model(base, LoraConfig(r=2, target_modules=targets))
        adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if "lora_A" in n}
        assert {n.split(".model.model.", 1)[1].split(".")[0] for n in adapted} == parts
        leaves = {n.rsplit(".", 1)[-1] for n in adapted}
        assert {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"} <= leaves
        assert "relative_k_proj" not in leaves and not any("proj_out" in n for n in adapted)


def test_cli_make_tiny_train_full_and_lora_eval_transcribe(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "tiny-canary"
    assert main(["make-tiny", "--family", "canary", str(model)]) == 0
    assert (model / "chat_template.jinja").is_file() and load_model(str(model)).family == "canary"
    full = tmp_path / "full"
    before, after = train_from_cli(
        model, dataset, full, "--num_train_epochs", "4", "--learning_rate", "3e-3"
    )
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (full / "processor_config.json").is_file() and (full / "chat_template.jinja").is_file()
    assert _loss(full, dataset) < _loss(model, dataset) - 0.5
    lora = tmp_path / "lora"
    train_from_cli(model, dataset, lora, "--lora", "--num_train_epochs", "4")
    adapter = load_file(str(lora / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)  # the base is not saved: frozen
    assert _loss(lora, dataset) < _loss(model, dataset)
    capsys.readouterr()
    report = tmp_path / "report.json"
    args = ["eval", "--model", str(full), "--manifest", str(dataset), "--output", str(report)]
    assert main([*args, "--max-samples", "3", "--max-new-tokens", "4"]) == 0
    data = json.loads(report.read_text())
    assert data["num_samples"] == 3
    capsys.readouterr()
    files = sorted(str(p) for p in (dataset.parent / "audio").glob("*.wav"))[:2]
    args = ["transcribe", "--model", str(lora), *files, "--max-new-tokens", "4"]
    assert main([*args, "--language", "en", "--num-beams", "2"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == files
    with pytest.raises(AsrtuneError, match="quantization"):
        load_model(str(model), quantization="4bit")


def test_push_dry_run_card_runs_with_plain_transformers_like_transcribe(
    tiny_canary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from transformers import CanaryForConditionalGeneration

    loaded = load_model(str(tiny_canary))
    eos = loaded.processor.tokenizer.eos_token_id
    script = _Script([*_ids(loaded, "Hello world"), eos])
    original = CanaryForConditionalGeneration.from_pretrained

    def scripted(*args, **kwargs):  # the same model, scripted for whoever loads it
        model = original(*args, **kwargs)
        model.proj_out.register_forward_hook(script)
        return model

    monkeypatch.setattr(CanaryForConditionalGeneration, "from_pretrained", scripted)
    argv = ["someone/tiny-canary-ft", "--base-model", "nvidia/canary-1b-v2", "--language", "de"]
    card, printed, audio = run_card_usage(tiny_canary, argv, tmp_path, monkeypatch, capsys)
    assert "CanaryForConditionalGeneration" in card and 'language = "de"' in card
    assert printed == "Hello world"
    script.calls = 0
    stay_offline(monkeypatch)
    speech = str(tmp_path / "stereo.wav")  # the clip the card's code read
    assert main(["transcribe", "--model", str(tiny_canary), speech, "--language", "de"]) == 0
    assert capsys.readouterr().out.splitlines() == [printed]  # one file: its text alone
    assert len(audio) == 19200  # 1.2 s, read as the card reads it
