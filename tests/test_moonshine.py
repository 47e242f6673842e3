"""The Moonshine adapter on a tiny random Moonshine (the real raw-audio front end, rotary
encoder and decoder, a Llama-style BPE with byte fallback): the builder and the real sizes,
training items token by token against the model's own processor, the trainer's loss,
generation (stop, cap, batches, beams, long audio), the CLI (make-tiny, full and LoRA
training, eval, transcribe) and the card's usage code with plain transformers (torchrun:
tests/test_distributed.py)."""

from __future__ import annotations

import json
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
from asrtune.models import LoadedModel, load_model
from asrtune.models import moonshine as M
from asrtune.models.losses import summed_token_loss
from asrtune.models.tiny_moonshine import make_tiny_moonshine, tiny_moonshine_config
from asrtune.trainer import AsrTrainer
from asrtune.training_data import admit_rows
from tests.conftest import make_talkative, tone, write_dataset
from tests.family_helpers import run_card_usage, train_from_cli


@pytest.fixture(scope="module")
def tiny_moonshine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_moonshine(tmp_path_factory.mktemp("models") / "tiny-moonshine")


@pytest.fixture(scope="module")
def loaded(tiny_moonshine: Path) -> LoadedModel:
    return load_model(str(tiny_moonshine))


@pytest.fixture(scope="module")
def talkative(tiny_moonshine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Moonshine with large random weights: it says something for every clip."""
    model = load_model(str(tiny_moonshine))
    make_talkative(model.model)
    out = tmp_path_factory.mktemp("models") / "talkative-moonshine"
    M.save(model, out)
    return out


def _batch(loaded: LoadedModel, manifest: Path) -> dict[str, torch.Tensor]:
    examples, skipped = admit_rows(loaded, load_rows(manifest).rows, "transcribe")
    assert not skipped
    data = WindowDataset(loaded, examples, "transcribe", False, 0)
    return M.collate([data[i] for i in range(len(data))])


def _loss(model_dir: Path, manifest: Path) -> float:
    model = load_model(str(model_dir))
    with torch.no_grad():
        return model.model(**_batch(model, manifest)).loss.item()


def _ids(loaded: LoadedModel, text: str) -> list[int]:
    return loaded.processor.tokenizer.encode(text, add_special_tokens=False)


def test_tiny_checkpoint_loads_with_plain_transformers(tiny_moonshine: Path) -> None:
    from transformers import (
        AutoModelForSpeechSeq2Seq,
        AutoProcessor,
        MoonshineForConditionalGeneration,
        Wav2Vec2Processor,
    )

    processor = AutoProcessor.from_pretrained(str(tiny_moonshine))
    model = AutoModelForSpeechSeq2Seq.from_pretrained(str(tiny_moonshine))
    assert isinstance(processor, Wav2Vec2Processor)
    assert isinstance(model, MoonshineForConditionalGeneration)
    assert 10_000 < sum(p.numel() for p in model.parameters()) < 200_000
    tokenizer = processor.tokenizer
    assert [tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id] == [0, 1, 2]
    assert model.config.decoder_start_token_id == 1 and model.config.eos_token_id == 2
    assert tokenizer.convert_ids_to_tokens(3) == "<0x00>"  # byte fallback, as in the real one
    for text in ["Hello world, this is a test.", "Ça va très bien — merci!", "日本語 ok"]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    assert tokenizer("hi").input_ids == _ids(SimpleNamespace(processor=processor), "hi")
    # the feature extractor passes raw audio through: no mel, no normalisation, no 30-s pad
    clips = [tone(1.0, 300), tone(0.5, 500)]
    inputs = processor(clips, sampling_rate=16000, return_tensors="pt", padding=True)
    assert inputs["input_values"].shape == (2, 16000)
    assert torch.equal(inputs["input_values"][1, :8000], torch.from_numpy(clips[1]))
    assert inputs["attention_mask"][1].tolist() == [1] * 8000 + [0] * 8000
    ids = model.generate(**inputs, max_new_tokens=3)
    assert ids.shape[0] == 2 and ids[:, 0].tolist() == [1, 1]  # starts at <s>


def test_tiny_builder_is_seeded_and_leaves_the_callers_rng(tmp_path: Path) -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = load_file(str(make_tiny_moonshine(tmp_path / "a", seed=0) / "model.safetensors"))
    assert torch.equal(torch.random.get_rng_state(), state)
    again = load_file(str(make_tiny_moonshine(tmp_path / "b", seed=0) / "model.safetensors"))
    other = load_file(str(make_tiny_moonshine(tmp_path / "c", seed=1) / "model.safetensors"))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize(
    # UsefulSensors/moonshine-tiny and -base: 27,092,736 and 61,513,920 parameters (tied
    # embeddings counted once), the counts keras-hub's moonshine_tiny_en / moonshine_base_en
    # presets give for the same released weights
    ("size", "expected"),
    [("moonshine-tiny", 27_092_736), ("moonshine-base", 61_513_920)],
)
def test_sizes_match_the_real_parameter_counts(size: str, expected: int) -> None:
    from transformers import MoonshineForConditionalGeneration

    config = tiny_moonshine_config(size)
    assert config.vocab_size == 32768 and config.tie_word_embeddings
    with torch.device("meta"):
        model = MoonshineForConditionalGeneration(config)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_collated_batch_token_by_token(loaded: LoadedModel, tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "d", 3)
    rows = load_rows(manifest).rows
    examples, skipped = admit_rows(loaded, rows, "transcribe")
    assert not skipped
    items = [M.window_item(loaded, [ex], "transcribe") for ex in examples]
    batch = M.collate(items)
    processor = loaded.processor
    eos, start = processor.tokenizer.eos_token_id, loaded.model.config.decoder_start_token_id
    longest = max(len(item["labels"]) for item in items)
    samples = batch["input_values"].shape[-1]
    assert batch["labels"].shape == batch["decoder_input_ids"].shape == (3, longest)
    for i, row in enumerate(rows):
        audio, _ = sf.read(row.audio_path, dtype="float32")
        # the model's own processor: the same raw samples, and the transcript's tokens
        own = processor(audio=audio, text=row.text, sampling_rate=16000)
        n = len(audio)
        assert np.array_equal(batch["input_values"][i, :n].numpy(), own["input_values"][0])
        assert not batch["input_values"][i, n:].any()
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (samples - n)
        text = own["labels"]
        assert text == _ids(loaded, row.text) and text  # it adds no special token
        k = len(text) + 1
        labels, decoder = batch["labels"][i].tolist(), batch["decoder_input_ids"][i].tolist()
        assert labels == [*text, eos] + [-100] * (longest - k)  # transcript, </s>, padding
        assert decoder[:k] == [start, *text]  # <s>, then the labels shifted right
        assert decoder[k:] == [M.PAD_TOKEN_ID] * (longest - k)
    # what the model's own shift makes of the labels (its loss path with labels only)
    from transformers.models.moonshine.modeling_moonshine import shift_tokens_right

    shifted = shift_tokens_right(batch["labels"], 0, start)
    assert torch.equal(shifted.masked_fill(batch["labels"].eq(-100), 0), batch["decoder_input_ids"])
    with pytest.raises(AsrtuneError, match="transcribe"):
        M.encode_labels(loaded, ["hi"], "en", "translate")
    with pytest.raises(AsrtuneError, match="timestamps"):
        M.encode_labels(loaded, ["hi"], "en", "transcribe", [(0.0, 1.0)])
    assert M.encode_labels(loaded, ["", " "], None, "transcribe") == [eos]  # non-speech
    assert M.encode_labels(loaded, ["Hello", "world"], None, "transcribe") == [
        *_ids(loaded, "Hello world"),
        eos,
    ]


def test_trainer_loss_is_the_models_own_loss_per_token(loaded: LoadedModel, tmp_path: Path) -> None:
    batch = _batch(loaded, write_dataset(tmp_path / "d", 3))
    assert batch["attention_mask"].eq(0).any()  # a padded batch
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
        texts = M.generate(loaded, *args, **kwargs)
    finally:
        hook.remove()
    return texts, script.calls


def test_generation_stops_at_eos_and_is_capped(loaded: LoadedModel) -> None:
    eos = loaded.processor.tokenizer.eos_token_id
    words = _ids(loaded, "Hello world")
    audios = [tone(1.0, 300), tone(2.0, 400)]
    texts, calls = _scripted(loaded, [*words, eos, *words], audios, None, "transcribe")
    assert texts == ["Hello world", "Hello world"] and not any(t.capped for t in texts)
    assert calls == len(words) + 1  # stopped at </s>, far below the token budget
    texts, calls = _scripted(loaded, words * 20, audios[:1], "en", "transcribe", max_new_tokens=3)
    assert texts[0].capped and texts[0] == loaded.processor.tokenizer.decode(words[:3])
    assert calls == 3
    # without a cap: 32 + 25 per second, within the decoder's positions
    texts, calls = _scripted(loaded, words * 200, [tone(1.0, 300)], None, "transcribe")
    assert texts[0].capped and calls == 32 + 25
    texts, calls = _scripted(loaded, words * 200, [tone(20.0, 300)], None, "transcribe")
    assert texts[0].capped and calls == loaded.model.config.max_position_embeddings - 1
    with pytest.raises(AsrtuneError, match="transcribe"):
        M.generate(loaded, audios, None, "translate")


def test_batch_and_beam_search_transcribe_each_input_as_alone(talkative: Path) -> None:
    loaded = load_model(str(talkative))
    audios = [tone(1.0, 300), tone(2.7, 500), tone(0.03, 700)]  # the last: under MIN_SAMPLES
    for beams in (1, 3):
        batch = M.generate(loaded, audios, None, "transcribe", num_beams=beams, max_new_tokens=6)
        alone = [
            M.generate(loaded, [a], None, "transcribe", num_beams=beams, max_new_tokens=6)[0]
            for a in audios
        ]
        assert batch == alone and len(set(batch)) > 1


def test_long_audio_is_generated_in_pieces(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(M, "MAX_AUDIO_SECONDS", 1.0)
    eos = loaded.processor.tokenizer.eos_token_id
    words = _ids(loaded, "Hello")
    texts, _ = _scripted(
        loaded, [*words, eos], [tone(2.5, 300), tone(0.5, 400)], None, "transcribe"
    )
    assert texts == ["Hello Hello Hello", "Hello"]  # 3 pieces + 1, in one batch


def test_lora_targets_and_frozen_encoder(loaded: LoadedModel) -> None:
    from peft import LoraConfig, get_peft_model

    for frozen in (False, True):
        base = load_model(str(loaded.source)).model
        targets = M.default_lora_targets(freeze_encoder=frozen)
        model = get_peft_model(base, LoraConfig(r=2, target_modules=targets))
        adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if "lora_A" in n}
        assert {n.rsplit(".", 1)[-1] for n in adapted} == set(M.LORA_TARGETS)
        assert any(".decoder." in n for n in adapted)
        assert any(".encoder." in n for n in adapted) != frozen
        assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    model = load_model(str(loaded.source)).model
    M.freeze_encoder(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.decoder.", "proj_out")) for n in trainable)


def test_cli_make_tiny_train_full_and_lora_eval_transcribe(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "tiny-moon"
    assert main(["make-tiny", "--family", "moonshine", str(model)]) == 0
    assert load_model(str(model)).family == "moonshine"
    # full: every part trains, the loss falls
    full = tmp_path / "full"
    before, after = train_from_cli(
        model, dataset, full, "--num_train_epochs", "4", "--learning_rate", "3e-3"
    )
    assert all(not torch.equal(before[k], after[k]) for k in before if k.endswith("q_proj.weight"))
    assert (full / "tokenizer.json").is_file() and (full / "processor_config.json").is_file()
    assert _loss(full, dataset) < _loss(model, dataset) - 0.5
    # LoRA: an adapter; merged, only the adapted projections differ from the base
    lora = tmp_path / "lora"
    train_from_cli(
        model, dataset, lora, "--lora", "--lora_r", "8", "--merge", "--num_train_epochs", "4",
        "--learning_rate", "1e-2",
    )  # fmt: skip
    adapter = load_file(str(lora / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    merged = load_file(str(lora / "merged" / "model.safetensors"))
    targets = tuple(f"{t}.weight" for t in M.LORA_TARGETS)
    untouched = [k for k in before if not k.endswith(targets)]
    assert any("conv1" in k for k in untouched) and any("embed_tokens" in k for k in untouched)
    assert all(torch.equal(before[k], merged[k]) for k in untouched)
    assert any(not torch.equal(before[k], merged[k]) for k in before if k.endswith(targets))
    assert _loss(lora / "merged", dataset) < _loss(model, dataset) - 0.3
    # eval and transcribe, of the full model and of the adapter folder
    for trained in (full, lora):
        report = tmp_path / f"{trained.name}.json"
        args = ["eval", "--model", str(trained), "--manifest", str(dataset)]
        assert main([*args, "--output", str(report), "--max-samples", "3"]) == 0
        data = json.loads(report.read_text())
        assert data["num_samples"] == 3 and data["wer"] >= 0
    capsys.readouterr()
    files = sorted(str(p) for p in (dataset.parent / "audio").glob("*.wav"))[:2]
    assert main(["transcribe", "--model", str(full), *files, "--max-new-tokens", "4"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == files
    with pytest.raises(AsrtuneError, match="quantization"):
        load_model(str(model), quantization="4bit")


def test_push_dry_run_card_runs_with_plain_transformers(
    talkative: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    repo = "someone/tiny-moonshine-ft"
    argv = [repo, "--base-model", "UsefulSensors/moonshine-tiny", "--language", "en"]
    card, printed, audio = run_card_usage(talkative, argv, tmp_path, monkeypatch, capsys)
    assert "MoonshineForConditionalGeneration" in card
    loaded = load_model(str(talkative))
    expected = M.generate(loaded, [audio], "en", "transcribe")[0]
    assert printed == expected and expected  # the card's code gives asrtune's text
    capsys.readouterr()
    args = ["transcribe", "--model", str(talkative), str(tmp_path / "stereo.wav")]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().split("\t")[-1] == printed


def test_a_registered_size_builds_on_the_meta_device() -> None:
    from asrtune.models import FAMILIES

    spec = FAMILIES["moonshine"]
    assert spec.tiny_sizes[0] == "tiny" and spec.default_size in spec.sizes
    assert all(v.startswith("UsefulSensors/moonshine-") for v in spec.sizes.values())
    assert not spec.capabilities.packing and not spec.capabilities.timestamps
