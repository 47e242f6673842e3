"""The Parakeet TDT adapter on a tiny random ParakeetForTDT (8x subsampling, a 256-token BPE
vocabulary with <pad> inside it + <blank> last): training items token by token, the trainer's
TDT loss, full, frozen-encoder and LoRA training, greedy TDT decoding, the CLI, and the
card's usage code with plain transformers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from asrtune.cli import main
from asrtune.data.rows import load_rows
from asrtune.data.sharding import LOSS_WEIGHT
from asrtune.dataset import WindowDataset
from asrtune.errors import AsrtuneError
from asrtune.models import LoadedModel, load_model
from asrtune.models import parakeet_tdt as P
from asrtune.models.tiny_parakeet import BLANK_TOKEN, PAD_TOKEN, make_tiny_parakeet_tdt
from asrtune.training_data import admit_rows
from tests.conftest import FAST_TRAINING as FAST
from tests.conftest import tone, write_dataset
from tests.family_helpers import run_card_usage, train_from_cli

summed_transducer_loss = P.summed_loss  # the family's loss (its kind's, models/kinds/transducer.py)


@pytest.fixture(scope="module")
def tiny_tdt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_parakeet_tdt(tmp_path_factory.mktemp("models") / "tiny-tdt")


@pytest.fixture(scope="module")
def loaded(tiny_tdt: Path) -> LoadedModel:
    return load_model(str(tiny_tdt))


def _items(loaded: LoadedModel, manifest: Path) -> list[dict]:
    examples, skipped = admit_rows(loaded, load_rows(manifest).rows, "transcribe")
    assert not skipped
    data = WindowDataset(loaded, examples, "transcribe", False, 0)
    return [data[i] for i in range(len(data))]


def _loss(model_dir: Path, manifest: Path) -> float:
    """TDT loss per label token, as the trainer computes it."""
    model = load_model(str(model_dir))
    with torch.no_grad():
        summed, count, _ = summed_transducer_loss(
            model.model, model.model, P.collate(_items(model, manifest))
        )
    return (summed / count).item()


def _with_pad_labels(batch: dict, pad: int) -> dict:
    """The batch as transformers' processor makes it: labels padded with the pad id."""
    return {**batch, "labels": batch["labels"].masked_fill(batch["labels"].eq(-100), pad)}


def test_tiny_processor_and_model_load_like_the_real_ones(tiny_tdt: Path) -> None:
    from transformers import AutoProcessor, ParakeetForTDT, ParakeetProcessor

    processor = AutoProcessor.from_pretrained(str(tiny_tdt))
    assert isinstance(processor, ParakeetProcessor) and processor._decoder_type == "tdt"
    model = ParakeetForTDT.from_pretrained(str(tiny_tdt))
    config, tokenizer = model.config, processor.tokenizer
    assert processor.blank_token == BLANK_TOKEN and tokenizer.pad_token == PAD_TOKEN
    # the blank is the last id, the pad a special token inside the vocabulary (as in v3)
    assert processor.blank_token_id == config.blank_token_id == config.vocab_size - 1
    assert tokenizer.pad_token_id == config.pad_token_id == 1
    assert model.generation_config.decoder_start_token_id == config.blank_token_id
    assert config.durations == [0, 1, 2, 3, 4] and config.encoder_config.subsampling_factor == 8
    text = "Numbers like 1, 2, 3 and 2024 should also be written correctly."
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, group_tokens=False) == text
    blank_and_pad = [config.blank_token_id, *ids, config.pad_token_id]
    assert tokenizer.decode(blank_and_pad, skip_special_tokens=True, group_tokens=False) == text


def test_collated_batch_token_by_token(loaded: LoadedModel, tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "d", 3)
    rows = load_rows(manifest).rows
    items = _items(loaded, manifest)
    batch = P.collate(items)
    tokenizer, config = loaded.processor.tokenizer, loaded.model.config
    blank, pad = config.blank_token_id, config.pad_token_id
    targets = [tokenizer.encode(r.text, add_special_tokens=False) for r in rows]
    longest = max(len(t) for t in targets)
    assert set(batch) == {"input_features", "attention_mask", "labels", "decoder_input_ids"}
    assert batch["labels"].shape == (3, longest) and batch["labels"].dtype == torch.long
    assert batch["decoder_input_ids"].shape == (3, longest + 1)
    frames = batch["input_features"].shape[1]
    assert batch["input_features"].shape == (3, frames, 128)
    for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
        missing = longest - len(target)
        assert batch["labels"][i].tolist() == target + [-100] * missing
        # the prediction network's input: the blank, the targets, the blank on padding
        assert batch["decoder_input_ids"][i].tolist() == [blank, *target] + [blank] * missing
        assert blank not in target and pad not in target
        assert tokenizer.decode(target, group_tokens=False) == row.text
        # what transformers' processor makes of the same text
        made = loaded.processor(
            sf.read(row.audio_path, dtype="float32")[0], sampling_rate=16000, text=row.text
        )
        assert made["labels"][0].tolist() == target
        assert made["decoder_input_ids"][0].tolist() == [blank, *target]
        n = int(made["attention_mask"][0].sum())
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (frames - n)
        assert torch.allclose(batch["input_features"][i, :n], made["input_features"][0, :n])
        assert not batch["input_features"][i, n:].any()  # zeros on padding
    # the blank and the pad id are never targets, even written out in a transcript
    markup = f"hi {BLANK_TOKEN} {PAD_TOKEN} all"
    assert {blank, pad} <= set(tokenizer.encode(markup, add_special_tokens=False))
    ids = P.encode_labels(loaded, [markup], None, "transcribe")
    assert ids and blank not in ids and pad not in ids
    with pytest.raises(AsrtuneError, match="timestamps"):
        P.encode_labels(loaded, ["hi"], "en", "transcribe", [(0.0, 1.0)])
    with pytest.raises(AsrtuneError, match="transcribe"):
        P.encode_labels(loaded, ["hi"], None, "translate")


def test_trainer_loss_is_the_models_tdt_loss_summed_per_utterance(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    items = _items(loaded, write_dataset(tmp_path / "d", 4))
    batch = P.collate(items)
    model, pad = loaded.model, loaded.model.config.pad_token_id
    lengths = batch["labels"].ne(-100).sum(-1)
    with torch.no_grad():
        summed, count, _ = summed_transducer_loss(model, model, batch)
        # transformers' own loss, from labels padded with the pad id as its processor pads
        own = model(**_with_pad_labels(batch, pad), reduction="none").loss
        mean = model(**_with_pad_labels(batch, pad)).loss  # its default: per token, averaged
        # the global batch split in two: each half padded to its own longest row
        halves = [
            summed_transducer_loss(model, model, P.collate(h)) for h in (items[:2], items[2:])
        ]
        # a data-parallel placeholder (labels all -100, loss weight 0) adds nothing
        masked = {**batch, "labels": batch["labels"].clone(), LOSS_WEIGHT: torch.ones(len(lengths))}
        masked["labels"][1] = -100
        masked[LOSS_WEIGHT][1] = 0.0
        without, count_without, _ = summed_transducer_loss(model, model, masked)
    assert count == lengths.sum() and torch.isfinite(own).all()
    torch.testing.assert_close(summed, own.sum(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(mean, (own / lengths).mean(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(summed, halves[0][0] + halves[1][0], rtol=1e-5, atol=1e-4)
    assert count == halves[0][1] + halves[1][1]
    torch.testing.assert_close(without, own.sum() - own[1], rtol=1e-5, atol=1e-4)
    assert count_without == count - lengths[1]


def test_a_target_equal_to_the_pad_id_still_counts(loaded: LoadedModel, tmp_path: Path) -> None:
    """transformers counts a row's label tokens as the labels that are not the pad id; the
    trainer counts them from -100, so a pad-valued target cannot shorten the row."""
    from transformers.loss.loss_tdt import tdt_loss

    (item,) = _items(loaded, write_dataset(tmp_path / "d", 1))
    model, config = loaded.model, loaded.model.config
    labels = list(item["labels"])
    labels[3] = config.pad_token_id
    decoder_input_ids = [config.blank_token_id, *labels]
    batch = P.collate([{**item, "labels": labels, "decoder_input_ids": decoder_input_ids}])
    with torch.no_grad():
        summed, count, outputs = summed_transducer_loss(model, model, batch)
        frames = model._get_subsampling_output_length(batch["attention_mask"].sum(-1))
        logits = outputs["logits"]
        expected = tdt_loss(
            logits[..., : config.vocab_size],
            logits[..., config.vocab_size :],
            batch["labels"],
            frames,
            torch.tensor([len(labels)]),
            config.blank_token_id,
            config.durations,
            reduction="none",
        )
        short = model(**batch, reduction="none").loss  # transformers' own count: one less
    assert count == len(labels)
    torch.testing.assert_close(summed, expected.sum(), rtol=1e-5, atol=1e-4)
    assert not torch.allclose(summed, short.sum(), rtol=1e-3)


def test_lora_targets_the_conformer_and_joint_projections(loaded: LoadedModel) -> None:
    from peft import LoraConfig, get_peft_model

    def adapted(freeze_encoder: bool) -> set[str]:
        base = load_model(str(loaded.source)).model
        targets = P.default_lora_targets(freeze_encoder)
        model = get_peft_model(base, LoraConfig(r=2, target_modules=targets))
        assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
        names = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if "lora_A" in n}
        return {n.removeprefix("base_model.model.") for n in names}

    joint = {"encoder_projector", "decoder.decoder_projector", "joint.head"}
    everything = adapted(False)
    encoder = {n for n in everything if n.startswith("encoder.layers.")}
    assert everything == encoder | joint and len(encoder) == 2 * 8
    assert {n.rsplit(".", 1)[-1] for n in encoder} == {
        *P.common.ATTENTION_TARGETS,
        *P.common.FEED_FORWARD_TARGETS,
    }
    assert adapted(True) == joint


def test_full_finetune_lowers_the_loss(tiny_tdt: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    flags = ["--num_train_epochs", "4", "--learning_rate", "3e-3"]
    before, after = train_from_cli(tiny_tdt, dataset, out, *flags)
    for part in ("encoder.layers.", "decoder.", "joint."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part))
    assert (out / "tokenizer.json").is_file() and (out / "processor_config.json").is_file()
    assert _loss(out, dataset) < _loss(tiny_tdt, dataset) - 0.5


def test_frozen_encoder_trains_only_the_prediction_and_joint_networks(
    tiny_tdt: Path, dataset: Path, tmp_path: Path
) -> None:
    flags = ["--freeze_encoder", "--num_train_epochs", "1", "--learning_rate", "1e-3"]
    before, after = train_from_cli(tiny_tdt, dataset, tmp_path / "head", *flags)
    # the batch norms' running statistics too (their num_batches_tracked still counts)
    encoder = [k for k in before if k.startswith("encoder.") and "num_batches" not in k]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    for part in ("encoder_projector.", "decoder.embedding.", "decoder.lstm.", "joint.head."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part))


def test_lora_training_lowers_loss_and_leaves_the_base(
    tiny_tdt: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lora"
    flags = ["--lora", "--lora_r", "8", "--merge", "--num_train_epochs", "4"]
    base, _ = train_from_cli(tiny_tdt, dataset, out, *flags, "--learning_rate", "1e-2")
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert any(".joint.head." in k for k in adapter) and any(".layers." in k for k in adapter)
    merged = load_file(str(out / "merged" / "model.safetensors"))
    targets = r"(_proj|_projector|linear[12]|joint\.head)\.weight$"
    untouched = [k for k in base if not re.search(targets, k) and "num_batches" not in k]
    assert untouched and all(torch.equal(base[k], merged[k]) for k in untouched)
    for name in ("q_proj", "encoder_projector", "decoder_projector", "joint.head"):
        assert any(not torch.equal(base[k], merged[k]) for k in base if name in k), name
    assert _loss(out / "merged", dataset) < _loss(tiny_tdt, dataset) - 0.5


class _Script:
    """Replaces the joint's logits at generation step i with ``steps[i]`` (the last one
    after): ``(token, duration index)``."""

    def __init__(self, steps: list[tuple[int, int]], vocab_size: int) -> None:
        self.steps, self.vocab_size, self.calls = steps, vocab_size, 0

    def __call__(self, module: torch.nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        token, duration = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        forced = torch.full_like(logits, -1e4)
        forced[..., token] = 1e4
        forced[..., self.vocab_size + duration] = 1e4
        return forced


def _scripted(loaded: LoadedModel, steps: list[tuple[int, int]], call, *args, **kwargs):
    """``call(*args, **kwargs)`` with the joint's logits following ``steps``."""
    script = _Script(steps, loaded.model.config.vocab_size)
    hook = loaded.model.joint.register_forward_hook(script)
    try:
        return call(*args, **kwargs)
    finally:
        hook.remove()


def test_greedy_decoding_drops_blanks_and_stops(loaded: LoadedModel) -> None:
    tokenizer, blank = loaded.processor.tokenizer, loaded.model.config.blank_token_id
    words = tokenizer.encode("Hello all", add_special_tokens=False)
    steps = [(words[0], 0)]  # a token, staying on its frame
    for token in words[1:]:
        steps += [(blank, 0), (token, 1)]  # the blank advances 1 frame though it says 0
    steps += [(words[-1], 0), (blank, 4)]  # a real repeat survives; blanks to the end
    assert sum(d for _, d in steps[:-1]) + len(words) < 12  # within the shorter clip's frames
    clips = [tone(1.0, 300), tone(2.0, 400)]
    texts = _scripted(loaded, steps, P.generate, loaded, clips, "en", "transcribe")
    capped = _scripted(
        loaded, steps, P.generate, loaded, clips[:1], None, "transcribe", max_new_tokens=3
    )
    expected = tokenizer.decode([*words, words[-1]], group_tokens=False)
    assert texts == [expected, expected] and not any(t.capped for t in texts)
    assert capped[0].capped and capped[0] == tokenizer.decode(words[:3], group_tokens=False)

    # a token forever, never advancing: decoding stops after 10 steps a frame, capped
    looping = _scripted(loaded, [(words[1], 0)], P.generate, loaded, clips[:1], None, "transcribe")
    inputs = P.features(loaded, clips[:1])
    features, mask = inputs["input_features"], inputs["attention_mask"]
    ((ids, done),) = _scripted(
        loaded, [(words[1], 0)], P.decode_pieces, loaded.model, features, mask
    )
    frames = int(P.common.encoder_frames(loaded.model, mask)[0])
    assert looping[0].capped and looping[0].startswith(tokenizer.decode(words[1:2]) * 3)
    assert not done and ids == [words[1]] * (10 * frames - 1)  # the blank it started from

    # the random model itself: each piece's tokens within 10 steps a frame of the batch
    inputs = P.features(loaded, [tone(0.5, 200), tone(1.5, 500)])
    mask = inputs["attention_mask"]
    frames = int(P.common.encoder_frames(loaded.model, mask).max())
    decoded = P.decode_pieces(loaded.model, inputs["input_features"], mask)
    assert len(decoded) == 2 and all(len(ids) < 10 * frames for ids, _ in decoded)


def test_long_audio_is_decoded_in_pieces(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(P, "MAX_AUDIO_SECONDS", 1.0)
    seen: list[int] = []
    hook = loaded.model.encoder.register_forward_hook(
        lambda _m, _i, out: seen.append(out.last_hidden_state.shape[0])
    )
    try:
        texts = P.generate(loaded, [tone(2.5, 300), tone(0.5, 400)], "en", "transcribe")
    finally:
        hook.remove()
    assert seen == [4] and len(texts) == 2  # 3 pieces + 1, in one batch
    assert all(isinstance(t, str) for t in texts)


def test_cli_make_tiny_train_eval_transcribe(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model, out = tmp_path / "tiny-tdt", tmp_path / "ft"
    assert main(["make-tiny", "--family", "parakeet_tdt", str(model)]) == 0
    assert load_model(str(model)).family == "parakeet_tdt"
    rows = write_dataset(tmp_path / "eval", 3)
    args = ["train", "--model", str(model), "--train-manifest", str(dataset)]
    args += ["--eval-manifest", str(rows), "--output-dir", str(out), *FAST]  # as in the guide
    args += ["--num_train_epochs", "1", "--save_strategy", "epoch", "--generation_max_length", "8"]
    assert main(args) == 0
    # the eval loss logged during training: per label token over the eval rows
    (checkpoint,) = out.glob("checkpoint-*")
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    logged = next(e for e in history if "eval_loss" in e)
    assert logged["eval_loss"] == pytest.approx(_loss(out, rows), rel=1e-4)
    report = tmp_path / "report.json"
    args = ["eval", "--model", str(out), "--manifest", str(rows), "--output", str(report)]
    assert main(args) == 0
    data = json.loads(report.read_text())
    assert data["num_samples"] == 3
    capsys.readouterr()
    files = sorted(str(p) for p in (rows.parent / "audio").glob("*.wav"))[:2]
    assert main(["transcribe", "--model", str(out), *files]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == files
    with pytest.raises(AsrtuneError, match="quantization"):
        load_model(str(model), quantization="4bit")


def test_push_dry_run_card_runs_with_plain_transformers(
    tiny_tdt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    argv = ["someone/tiny-parakeet-tdt-ft", "--base-model", "nvidia/parakeet-tdt-0.6b-v3"]
    card, printed, audio = run_card_usage(tiny_tdt, argv, tmp_path, monkeypatch, capsys)
    assert "ParakeetForTDT" in card
    # the random model says something, and what asrtune says (blanks dropped)
    expected = P.generate(load_model(str(tiny_tdt)), [audio], None, "transcribe", precision="fp32")
    assert printed and printed == expected[0]
