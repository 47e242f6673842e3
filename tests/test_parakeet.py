"""The Parakeet CTC adapter on a tiny random ParakeetForCTC (2x subsampling, a 257-token BPE
vocabulary + blank): CTC targets token by token, the trainer's CTC loss, full and LoRA
training, greedy decoding, the CLI, and the card's usage code with plain transformers."""

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
from asrtune.models import parakeet_ctc as P
from asrtune.models.kinds.ctc import summed_loss as summed_ctc_loss
from asrtune.models.tiny_parakeet import PAD_TOKEN, make_tiny_parakeet_ctc
from asrtune.training_data import admit_rows
from tests.conftest import tone, write_dataset
from tests.family_helpers import run_card_usage, train_from_cli


@pytest.fixture(scope="module")
def tiny_parakeet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_parakeet_ctc(tmp_path_factory.mktemp("models") / "tiny-parakeet")


@pytest.fixture(scope="module")
def loaded(tiny_parakeet: Path) -> LoadedModel:
    return load_model(str(tiny_parakeet))


def _batch(loaded: LoadedModel, manifest: Path) -> dict[str, torch.Tensor]:
    examples, skipped = admit_rows(loaded, load_rows(manifest).rows, "transcribe")
    assert not skipped
    data = WindowDataset(loaded, examples, "transcribe", False, 0)
    return P.collate([data[i] for i in range(len(data))])


def _loss(model_dir: Path, manifest: Path) -> float:
    """CTC loss per label token, as the trainer computes it."""
    model = load_model(str(model_dir))
    batch = _batch(model, manifest)
    with torch.no_grad():
        summed, count, _ = summed_ctc_loss(model.model, model.model, batch)
    return (summed / count).item()


def test_tiny_processor_loads_with_auto_processor(tiny_parakeet: Path) -> None:
    from transformers import AutoProcessor, ParakeetForCTC, ParakeetProcessor

    processor = AutoProcessor.from_pretrained(str(tiny_parakeet))
    assert isinstance(processor, ParakeetProcessor) and processor._decoder_type == "ctc"
    model = ParakeetForCTC.from_pretrained(str(tiny_parakeet))
    tokenizer = processor.tokenizer
    assert tokenizer.pad_token == PAD_TOKEN
    assert tokenizer.pad_token_id == model.config.pad_token_id == model.config.vocab_size - 1
    text = "Numbers like 1, 2, 3 and 2024 should also be written correctly."
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, group_tokens=False) == text


def test_collated_batch_token_by_token(loaded: LoadedModel, tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "d", 3)
    rows = load_rows(manifest).rows
    batch = _batch(loaded, manifest)
    tokenizer = loaded.processor.tokenizer
    blank = loaded.model.config.pad_token_id
    targets = [tokenizer.encode(r.text, add_special_tokens=False) for r in rows]
    longest = max(len(t) for t in targets)
    assert batch["labels"].shape == (3, longest) and batch["labels"].dtype == torch.long
    frames = batch["input_features"].shape[1]
    assert batch["input_features"].shape == (3, frames, 80)
    for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
        labels = batch["labels"][i].tolist()
        assert labels == target + [-100] * (longest - len(target))  # text ids, then -100
        assert blank not in labels and tokenizer.decode(target, group_tokens=False) == row.text
        alone = P.features(loaded, [sf.read(row.audio_path, dtype="float32")[0]])
        n = int(alone["attention_mask"][0].sum())  # the extractor's own mask
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (frames - n)
        assert torch.allclose(batch["input_features"][i, :n], alone["input_features"][0, :n])
        assert not batch["input_features"][i, n:].any()  # zeros on padding
    with pytest.raises(AsrtuneError, match="timestamps"):
        P.encode_labels(loaded, ["hi"], "en", "transcribe", [(0.0, 1.0)])
    with pytest.raises(AsrtuneError, match="transcribe"):
        P.encode_labels(loaded, ["hi"], None, "translate")


def test_trainer_loss_is_the_models_ctc_loss_summed_per_utterance(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    batch = _batch(loaded, write_dataset(tmp_path / "d", 3))
    model = loaded.model
    with torch.no_grad():
        summed, count, _ = summed_ctc_loss(model, model, batch)
        # transformers' own loss ("mean": each utterance's loss / its label tokens, averaged)
        mean = model(**batch).loss
        lengths = batch["labels"].ne(-100).sum(-1)
        rows = []
        for i in range(3):
            single = {k: v[i : i + 1] for k, v in batch.items()}
            rows.append(model(**single).loss * lengths[i])
        # a placeholder (labels all -100, loss weight 0) adds nothing
        masked = {**batch, "labels": batch["labels"].clone(), LOSS_WEIGHT: torch.ones(len(lengths))}
        masked["labels"][1] = -100
        masked[LOSS_WEIGHT][1] = 0.0
        without, count_without, _ = summed_ctc_loss(model, model, masked)
    assert model.config.ctc_loss_reduction == "mean"  # restored
    assert count == lengths.sum()
    assert torch.allclose(summed, torch.stack(rows).sum(), rtol=1e-4)
    assert torch.allclose(mean, (torch.stack(rows) / lengths).mean(), rtol=1e-4)
    assert torch.allclose(without, rows[0] + rows[2], rtol=1e-4)
    assert count_without == lengths[0] + lengths[2]


def test_lora_targets_the_conformer_projections(loaded: LoadedModel) -> None:
    from peft import LoraConfig, get_peft_model

    base = load_model(str(loaded.source)).model
    model = get_peft_model(base, LoraConfig(r=2, target_modules=P.default_lora_targets(False)))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if "lora_A" in n}
    kinds = {n.rsplit(".", 1)[-1] for n in adapted}
    assert kinds == {*P.ATTENTION_TARGETS, *P.FEED_FORWARD_TARGETS}
    assert all(".encoder.layers." in n for n in adapted) and len(adapted) == 2 * 8
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)


def test_full_finetune_lowers_the_loss(tiny_parakeet: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    flags = ["--num_train_epochs", "4", "--learning_rate", "3e-3"]
    before, after = train_from_cli(tiny_parakeet, dataset, out, *flags)
    assert all(not torch.equal(before[k], after[k]) for k in before if "ctc_head" in k)
    assert (out / "tokenizer.json").is_file() and (out / "processor_config.json").is_file()
    assert _loss(out, dataset) < _loss(tiny_parakeet, dataset) - 0.5


def test_frozen_encoder_trains_only_the_ctc_head(
    tiny_parakeet: Path, dataset: Path, tmp_path: Path
) -> None:
    flags = ["--freeze_encoder", "--num_train_epochs", "1", "--learning_rate", "1e-3"]
    before, after = train_from_cli(tiny_parakeet, dataset, tmp_path / "head", *flags)
    encoder = [k for k in before if k.startswith("encoder.") and "num_batches" not in k]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in before if "ctc_head" in k)


def test_lora_training_lowers_loss_and_leaves_the_base(
    tiny_parakeet: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lora"
    flags = ["--lora", "--lora_r", "8", "--merge", "--num_train_epochs", "4"]
    flags += ["--learning_rate", "1e-2", "--eval-manifest", str(dataset), "--max_eval_samples", "2"]
    base, _ = train_from_cli(tiny_parakeet, dataset, out, *flags)
    assert json.loads((out / "eval_results.json").read_text())["num_samples"] == 2
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert adapter and all(".encoder.layers." in k and "lora_" in k for k in adapter)
    merged = load_file(str(out / "merged" / "model.safetensors"))
    untouched = [
        k
        for k in base
        if not re.search(r"(_proj|linear[12])\.weight$", k) and "num_batches" not in k
    ]
    assert untouched and all(torch.equal(base[k], merged[k]) for k in untouched)
    assert any(not torch.equal(base[k], merged[k]) for k in base if "q_proj" in k)
    assert _loss(out / "merged", dataset) < _loss(tiny_parakeet, dataset) - 0.5


class _Script:
    """Replaces the CTC head's logits: frame t says ``frames[t]`` (the last one after)."""

    def __init__(self, frames: list[int]) -> None:
        self.frames = frames

    def __call__(self, module: torch.nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        forced = torch.full_like(logits, -1e4)
        for t in range(logits.shape[1]):
            forced[:, t, self.frames[min(t, len(self.frames) - 1)]] = 1e4
        return forced


def test_greedy_decoding_collapses_repeats_and_drops_blanks(loaded: LoadedModel) -> None:
    tokenizer = loaded.processor.tokenizer
    blank = loaded.model.config.pad_token_id
    words = tokenizer.encode("Hello all", add_special_tokens=False)
    frames = [blank]
    for token in words:
        frames += [token, token, blank]  # each token twice, then a blank
    frames += [words[-1], blank, words[-1]]  # a real repeat survives: blank between
    hook = loaded.model.ctc_head.register_forward_hook(_Script([*frames, blank]))
    try:
        texts = P.generate(loaded, [tone(1.0, 300), tone(2.0, 400)], "en", "transcribe")
        capped = P.generate(loaded, [tone(1.0, 300)], None, "transcribe", max_new_tokens=2)
    finally:
        hook.remove()
    expected = tokenizer.decode([*words, words[-1], words[-1]], group_tokens=False)
    assert texts == [expected, expected] and not any(t.capped for t in texts)
    assert capped[0].capped and capped[0] == tokenizer.decode(words[:2], group_tokens=False)
    assert P.ctc_collapse([5, 5, blank, 5, 7, 7, blank, blank], blank) == [5, 5, 7]


def test_long_audio_is_decoded_in_pieces(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(P, "MAX_AUDIO_SECONDS", 1.0)
    seen: list[int] = []
    hook = loaded.model.ctc_head.register_forward_hook(
        lambda _m, _i, out: seen.append(out.shape[0])
    )
    try:
        texts = P.generate(loaded, [tone(2.5, 300), tone(0.5, 400)], "en", "transcribe")
    finally:
        hook.remove()
    assert seen == [4] and len(texts) == 2  # 3 pieces + 1, in one batch
    assert all(isinstance(t, str) for t in texts)


def test_cli_make_tiny_eval_transcribe(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "tiny-pk"
    assert main(["make-tiny", "--family", "parakeet_ctc", str(model)]) == 0
    assert load_model(str(model)).family == "parakeet_ctc"
    report = tmp_path / "report.json"
    args = ["eval", "--model", str(model), "--manifest", str(dataset), "--output", str(report)]
    assert main([*args, "--max-samples", "3"]) == 0
    data = json.loads(report.read_text())
    rows = [json.loads(x) for x in report.with_name("report.utterances.jsonl").open()]
    assert data["num_samples"] == len(rows) == 3 and all(r["hyp"] for r in rows)
    capsys.readouterr()
    files = sorted(str(p) for p in (dataset.parent / "audio").glob("*.wav"))[:2]
    assert main(["transcribe", "--model", str(model), *files]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == files
    with pytest.raises(AsrtuneError, match="quantization"):
        load_model(str(model), quantization="4bit")


def test_push_dry_run_card_runs_with_plain_transformers(
    tiny_parakeet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    argv = ["someone/tiny-parakeet-ft", "--base-model", "nvidia/parakeet-ctc-0.6b"]
    card, printed, _ = run_card_usage(
        tiny_parakeet, [*argv, "--language", "en"], tmp_path, monkeypatch, capsys
    )
    assert "ParakeetForCTC" in card
    assert printed  # the random model says something
    # NVIDIA's licence, from the family's recipe, with the attribution it asks for
    assert "\nlicense: cc-by-4.0\n" in card and "(CC-BY-4.0)" in card


def _two_clips(loaded: LoadedModel) -> dict[str, torch.Tensor]:
    return P.features(loaded, [tone(1.0, 220.0), 0.3 * tone(0.6, 500.0)])


def test_frozen_batch_norms_normalize_with_running_statistics(tiny_parakeet: Path) -> None:
    """A frozen encoder (or the base under LoRA) computes in training what it computes at
    inference, each utterance apart from the others in its batch."""
    from transformers import ParakeetForCTC

    from asrtune.training import freeze_frozen_batch_norms

    model = ParakeetForCTC.from_pretrained(str(tiny_parakeet))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    generator = torch.Generator().manual_seed(0)
    for norm in norms:  # statistics unlike any one batch's
        norm.running_mean.normal_(0.0, 0.5, generator=generator)
        norm.running_var.uniform_(0.5, 2.0, generator=generator)
    model.encoder.requires_grad_(False)
    assert freeze_frozen_batch_norms(model) == len(norms) > 0
    inputs = _two_clips(load_model(str(tiny_parakeet)))
    frames = int(inputs["attention_mask"][1].sum())
    statistics = [norm.running_mean.clone() for norm in norms]

    def encode(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.encoder(input_features=features, attention_mask=mask).last_hidden_state

    model.train()  # as the Trainer does at every step
    together = encode(inputs["input_features"], inputs["attention_mask"])
    alone = encode(inputs["input_features"][1:, :frames], inputs["attention_mask"][1:, :frames])
    model.eval()
    inference = encode(inputs["input_features"], inputs["attention_mask"])
    torch.testing.assert_close(together, inference)
    valid = alone.shape[1]
    torch.testing.assert_close(together[1, :valid], alone[0], atol=1e-5, rtol=1e-4)
    assert all(torch.equal(s, n.running_mean) for s, n in zip(statistics, norms, strict=True))


def test_trainable_batch_norms_sync_across_gpu_processes_only(tiny_parakeet: Path) -> None:
    from transformers import ParakeetForCTC

    from asrtune.training import sync_trainable_batch_norms

    model = ParakeetForCTC.from_pretrained(str(tiny_parakeet))
    count = sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    cuda = torch.device("cuda")  # the conversion itself needs no GPU
    assert sync_trainable_batch_norms(model, torch.device("cpu"), 2) == 0  # gloo: none
    assert sync_trainable_batch_norms(model, cuda, 1) == 0
    model.encoder.layers[0].requires_grad_(False)  # a frozen one stays as it is
    frozen = sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.encoder.layers[0].modules())
    assert sync_trainable_batch_norms(model, cuda, 2) == count - frozen > 0
    synced = [m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert len(synced) == count - frozen
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.encoder.layers[0].modules())
