"""Whisper adapter: label layout, packed windows, collation, limits, generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from asrtune.data.rows import load_rows
from asrtune.dataset import WindowDataset
from asrtune.errors import AsrtuneError
from asrtune.models import (
    computes_bf16_natively,
    detect_family,
    inference_precision,
    load_model,
)
from asrtune.models import whisper as W
from asrtune.training_data import admit_rows
from tests.conftest import make_talkative, tone


def _ids(loaded, *tokens: str) -> list[int]:
    return [loaded.processor.tokenizer.convert_tokens_to_ids(t) for t in tokens]


def test_labels_have_prefix_text_and_eos_but_no_start_token(tiny_whisper: Path) -> None:
    loaded = load_model(str(tiny_whisper))
    labels = W.encode_labels(loaded, ["hello world"], "fr", "transcribe")
    assert labels[:3] == _ids(loaded, "<|fr|>", "<|transcribe|>", "<|notimestamps|>")
    assert labels[-1] == loaded.processor.tokenizer.eos_token_id
    assert _ids(loaded, "<|startoftranscript|>")[0] not in labels
    text = loaded.processor.tokenizer.decode(labels, skip_special_tokens=True)
    assert text.strip() == "hello world"
    # packing two texts concatenates their token runs exactly
    two = W.encode_labels(loaded, ["hello", "world"], "fr", "transcribe")
    assert loaded.processor.tokenizer.decode(two, skip_special_tokens=True).strip() == (
        "hello world"
    )


def test_english_only_prefix_and_language_errors(tiny_whisper_en: Path, tiny_whisper: Path) -> None:
    english = load_model(str(tiny_whisper_en))
    assert W.label_prefix(english, None, "transcribe") == _ids(english, "<|notimestamps|>")
    with pytest.raises(AsrtuneError, match="cannot translate"):
        W.label_prefix(english, None, "translate")
    multi = load_model(str(tiny_whisper))
    with pytest.raises(AsrtuneError, match="needs a language"):
        W.label_prefix(multi, None, "transcribe")
    assert W.label_prefix(multi, "German", "translate")[0] == _ids(multi, "<|de|>")[0]
    with pytest.raises(AsrtuneError, match="does not know"):
        W.language_code("klingon")


def test_packed_dataset_and_collate(tiny_whisper: Path, dataset: Path) -> None:
    loaded = load_model(str(tiny_whisper))
    rows = load_rows(dataset).rows
    examples, skipped = admit_rows(loaded, rows, "transcribe")
    assert len(examples) + len(skipped) == len(rows)
    packed = WindowDataset(loaded, examples, "transcribe", pack=True, seed=0)
    single = WindowDataset(loaded, examples, "transcribe", pack=False, seed=0)
    assert len(single) == len(examples) and len(packed) < len(single)
    assert packed.audio_seconds() == pytest.approx(single.audio_seconds())
    batch = W.collate([packed[i] for i in range(len(packed))])
    frames = loaded.processor.feature_extractor.nb_max_frames
    assert batch["input_features"].shape == (len(packed), 80, frames)
    assert batch["labels"].dtype == torch.long
    lengths = [len(packed[i]["labels"]) for i in range(len(packed))]
    assert batch["labels"].shape[1] == max(lengths)
    start = loaded.model.config.decoder_start_token_id
    for row, inputs, length in zip(
        batch["labels"], batch["decoder_input_ids"], lengths, strict=True
    ):
        assert (row[length:] == -100).all() and (row[:length] != -100).all()
        assert length <= loaded.model.config.max_target_positions
        # the decoder reads the labels shifted right behind <|startoftranscript|>
        assert inputs[0] == start and torch.equal(inputs[1:length], row[: length - 1])
    with torch.no_grad():  # the same loss as the model's own shift of the labels
        given = loaded.model(**batch).loss
        derived = loaded.model(input_features=batch["input_features"], labels=batch["labels"]).loss
    torch.testing.assert_close(given, derived)


def test_rows_over_the_limits_are_reported_not_trained(tiny_whisper: Path, tmp_path: Path) -> None:
    import json

    import soundfile as sf

    loaded = load_model(str(tiny_whisper))
    sf.write(tmp_path / "long.wav", tone(31, 300), 16000)
    sf.write(tmp_path / "short.wav", tone(1, 300), 16000)
    rows = [
        {"id": "long", "audio_path": "long.wav", "text": "too long"},
        {"id": "wordy", "audio_path": "short.wav", "text": "word " * 80},
        {"id": "ok", "audio_path": "short.wav", "text": "fine"},
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    examples, skipped = admit_rows(loaded, load_rows(tmp_path / "m.jsonl", "en").rows, "transcribe")
    assert [e.row.id for e in examples] == ["ok"]
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert reasons["long"] == "audio 31.0 s > 30 s"
    assert reasons["wordy"].endswith("label tokens > 64")


@pytest.mark.parametrize(
    "seconds", [(5.0, 3.01, 0.006), (30.0, 1.0), (29.999,), (29.01, 0.0003), (2.0, 0.0)]
)
def test_window_features_equal_the_extractors_padded_to_30_s(
    tiny_whisper: Path, seconds: tuple[float, ...]
) -> None:
    extractor = load_model(str(tiny_whisper)).processor.feature_extractor
    rng = np.random.default_rng(len(seconds))
    audios = [(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for s in seconds]
    audios[-1][: 16000 // 2] = 0.0  # silence, and an all-silent clip when it is that short
    expected = extractor(
        audios, sampling_rate=16000, return_tensors="pt", return_attention_mask=True
    )
    features, mask = W.window_features(extractor, audios)
    assert features.shape == expected.input_features.shape
    torch.testing.assert_close(features, expected.input_features, atol=1e-5, rtol=0)
    assert torch.equal(mask, expected.attention_mask.to(mask.dtype))


def test_window_features_of_a_dithering_extractor_cover_the_whole_window(
    tiny_whisper: Path,
) -> None:
    extractor = load_model(str(tiny_whisper)).processor.feature_extractor
    extractor.dither = 0.01  # noise on every sample, padding included
    features, mask = W.window_features(extractor, [tone(2, 300)])
    assert features.shape[-1] == extractor.nb_max_frames and int(mask.sum()) == 200
    assert features[0, :, -100:].std() > 0  # not the constant fill of an undithered window


def test_generate_short_and_long_form(talkative_whisper: Path, tmp_path: Path) -> None:
    """Long audio is decoded past its first 30-s window, and a short file's hypothesis
    does not depend on a long one sharing its batch (long-form decodes with timestamps)."""
    from asrtune.inference import DecodingOptions, transcribe_files

    loaded = load_model(str(talkative_whisper))
    short, long = tone(2, 300), tone(45, 500)
    whole = W.generate(loaded, [long], "en", "transcribe", max_new_tokens=8)
    first_window = W.generate(loaded, [long[: 30 * 16000]], "en", "transcribe", max_new_tokens=8)
    assert whole != first_window
    paths = [tmp_path / "short.wav", tmp_path / "long.wav"]
    for path, audio in zip(paths, (short, long), strict=True):
        sf.write(path, audio, 16000)
    options = DecodingOptions(language="en", max_new_tokens=8)
    together = transcribe_files(loaded, [str(p) for p in paths], options, progress=False)
    alone = transcribe_files(loaded, [str(paths[0])], options, progress=False)
    assert together[0] == alone[0] and together[1] == whole[0]


def _linear_output_dtypes(module: torch.nn.Module) -> tuple[list[torch.dtype], list]:
    seen: list[torch.dtype] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        for m in module.modules()
        if isinstance(m, torch.nn.Linear)
    ]
    return seen, hooks


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp32", torch.float32)]
)
def test_generate_precision_reaches_encoder_and_decoder(
    tiny_whisper: Path, precision: str, dtype: torch.dtype
) -> None:
    loaded = load_model(str(tiny_whisper))
    seen, hooks = _linear_output_dtypes(loaded.model)
    try:
        texts = W.generate(loaded, [tone(2, 300)], "en", "transcribe", 4, precision=precision)
    finally:
        for hook in hooks:
            hook.remove()
    assert isinstance(texts[0], str)
    assert seen and set(seen) == {dtype}
    assert next(loaded.model.parameters()).dtype == torch.float32  # weights stay float32


def test_inference_precision_rules(tiny_whisper: Path) -> None:
    model = load_model(str(tiny_whisper)).model
    with inference_precision(model, "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with inference_precision(model, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with inference_precision(model, "auto"):
        assert torch.is_autocast_enabled("cpu") == computes_bf16_natively(torch.device("cpu"))
    with inference_precision(model.to(torch.bfloat16), "bf16"):
        assert not torch.is_autocast_enabled("cpu")  # half-precision weights run as they are
    with pytest.raises(AsrtuneError, match="precision must be one of"):
        inference_precision(model, "fp16")


def test_encoding_in_slices_equals_one_batch(
    tiny_whisper: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_model(str(tiny_whisper)).model
    features = torch.randn(5, model.config.num_mel_bins, 3000)
    monkeypatch.setattr(W, "CPU_ENCODER_SLICE", 2)
    with torch.no_grad():
        whole = model.get_encoder()(features).last_hidden_state
        sliced = W._encode_in_slices(model, features).last_hidden_state
    torch.testing.assert_close(sliced, whole, atol=1e-5, rtol=1e-4)


def test_a_batch_decodes_like_its_clips_alone_even_when_timestamps_come_out(
    tiny_whisper: Path,
) -> None:
    """Weights this large make the tiny model emit timestamp pairs; Whisper's segment loop
    must not then re-decode a window from its encoder states (it used to fail on batches)."""
    loaded = load_model(str(tiny_whisper))
    make_talkative(loaded.model)
    rng = np.random.default_rng(0)
    audios = [(0.3 * rng.standard_normal(s * 16000)).astype(np.float32) for s in (3, 1, 5)]
    for beams in (1, 2):
        batch = W.generate(loaded, audios, "en", "transcribe", beams, 8, precision="fp32")
        alone = [W.generate(loaded, [a], "en", "transcribe", beams, 8, "fp32")[0] for a in audios]
        assert batch == alone


def test_bf16_autocast_casts_frozen_weights_once_per_context() -> None:
    from torch.profiler import profile

    layer = torch.nn.Linear(64, 48).requires_grad_(False)  # like a merged LoRA model
    x = torch.randn(3, 64)
    with torch.no_grad(), inference_precision(layer, "bf16"), profile(record_shapes=True) as prof:
        for _ in range(3):
            assert layer(x).dtype == torch.bfloat16
    weight_casts = [
        e for e in prof.events() if e.name == "aten::_to_copy" and e.input_shapes[:1] == [[48, 64]]
    ]
    assert len(weight_casts) == 1
    assert not any(p.requires_grad for p in layer.parameters())  # frozen again afterwards


def test_family_detection(tiny_whisper: Path, tmp_path: Path) -> None:
    assert detect_family(str(tiny_whisper)) == "whisper"
    assert detect_family("openai/whisper-large-v3") == "whisper"
    with pytest.raises(AsrtuneError, match="model family"):
        detect_family("someone/fastspeech2-base")
    with pytest.raises(AsrtuneError, match=r"no config\.json"):
        detect_family(str(tmp_path))


def test_each_epoch_repacks_with_the_same_number_of_windows(
    tiny_whisper: Path, tmp_path: Path
) -> None:
    from tests.conftest import write_dataset

    loaded = load_model(str(tiny_whisper))
    rows = load_rows(write_dataset(tmp_path / "d", 40, seconds=1.0)).rows
    examples, _ = admit_rows(loaded, rows, "transcribe")
    data = WindowDataset(loaded, examples, "transcribe", pack=True, seed=0)
    first = [[ex.row.id for ex in window] for window in data.windows]
    data.set_epoch(1)
    second = [[ex.row.id for ex in window] for window in data.windows]
    assert len(first) == len(second) and first != second
    assert sorted(i for w in first for i in w) == sorted(i for w in second for i in w)
    data.set_epoch(0)  # deterministic: a resumed run sees the same windows per epoch
    again = WindowDataset(loaded, examples, "transcribe", pack=True, seed=0)
    again.set_epoch(1)
    assert [[ex.row.id for ex in w] for w in again.windows] == second


def test_timestamps_mark_each_utterance_in_a_share_of_the_windows(
    tiny_whisper: Path, tmp_path: Path
) -> None:
    from asrtune.api import train
    from asrtune.data.windows import WindowPlan
    from tests.conftest import write_dataset

    loaded = load_model(str(tiny_whisper))
    manifest = write_dataset(tmp_path / "d", 2, seconds=1.0)
    examples, _ = admit_rows(loaded, load_rows(manifest).rows, "transcribe")
    item = W.window_item(loaded, examples, "transcribe", plan=WindowPlan(timestamps=True))
    tokenizer = loaded.processor.tokenizer
    text = "".join(tokenizer.convert_ids_to_tokens(item["labels"]))
    # clip0 is 1.0 s, then a 0.4-s gap, then clip1 (1.1 s): 0.00-1.00, 1.40-2.50
    assert "<|0.00|>" in text and "<|1.00|><|1.40|>" in text and "<|2.50|>" in text
    assert "<|notimestamps|>" not in text
    # natural gaps: a lead-in and a longer gap move the marks
    plan = WindowPlan(timestamps=True, lead_in=0.3, gaps=(0.8,), noise_seed=1)
    text = "".join(
        tokenizer.convert_ids_to_tokens(
            W.window_item(loaded, examples, "transcribe", plan=plan)["labels"]
        )
    )
    assert "<|0.30|>" in text and "<|1.30|><|2.10|>" in text and "<|3.20|>" in text
    # training sees both layouts: the collated batches hold windows of each
    batches: list[dict] = []

    def record_batches(trainer: Any) -> None:
        collate = trainer.data_collator

        def recording(items: list[dict]) -> dict:
            batches.append(collate(items))
            return batches[-1]

        trainer.data_collator = recording

    train(
        record_batches,
        model=str(tiny_whisper),
        train_manifest=str(write_dataset(tmp_path / "many", 16, seconds=6.0)),
        output_dir=str(tmp_path / "o"),
        report_to="none",
        num_train_epochs=1,
        save_strategy="no",
        per_device_train_batch_size=16,
        timestamp_share=0.5,
    )
    timestamp_begin = tokenizer.convert_tokens_to_ids("<|0.00|>")
    notimestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    modes = []
    for batch in batches:
        for labels, inputs in zip(batch["labels"], batch["decoder_input_ids"], strict=True):
            marked = int((labels[labels != -100] >= timestamp_begin).sum())
            modes.append(marked > 0)
            assert (marked > 0) == (notimestamps not in inputs)  # one layout or the other
            assert marked % 2 == 0  # each utterance's start and end
    assert len(modes) >= 6 and any(modes) and not all(modes), modes


def test_generation_prints_no_deprecation_warning_of_whisper_s_own_call(
    tiny_whisper: Path,
) -> None:
    """transformers' Whisper generate passes suppress_tokens beside its generation config
    in every call; the deprecation warning that triggers is not the user's to act on."""
    import logging

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    logger, collect = logging.getLogger("transformers.generation.utils"), Collect()
    logger.addHandler(collect)
    logging.Logger.warning_once.cache_clear()  # type: ignore[attr-defined]
    try:
        loaded = load_model(str(tiny_whisper))
        W.generate(loaded, [tone(2, 300), tone(40, 400)], "en", "transcribe", max_new_tokens=4)
        W.generate_segments(loaded, [tone(2, 300)], "en", "transcribe", max_new_tokens=4)
    finally:
        logger.removeHandler(collect)
    assert not [m for m in collect.messages if "Passing `generation_config` together" in m]


@pytest.mark.parametrize("multilingual", [True, False])
@pytest.mark.parametrize(("requested", "new_tokens"), [(5, 5), (None, 32 + 25), (100, None)])
def test_generation_stops_at_the_token_budget(
    tiny_whisper: Path,
    tiny_whisper_en: Path,
    multilingual: bool,
    requested: int | None,
    new_tokens: int | None,
) -> None:
    """A short-form hypothesis gets ``max_new_tokens`` (default: 32 + 25 per second of
    audio) new tokens after its prompt, never more than the decoder's positions leave; a
    model that never says end-of-text runs to exactly that many decoder steps."""
    loaded = load_model(str(tiny_whisper if multilingual else tiny_whisper_en))
    end = loaded.processor.tokenizer.eos_token_id
    loaded.model.generation_config.suppress_tokens = [end]  # it never stops by itself
    loaded.model.generation_config.begin_suppress_tokens = [end]
    prompt = (
        4 if multilingual else 2
    )  # <|startoftranscript|> (<|en|><|transcribe|>) <|notimestamps|>
    if new_tokens is None:
        new_tokens = loaded.model.config.max_target_positions - prompt
    steps: list[int] = []
    decoder = loaded.model.model.decoder
    hook = decoder.register_forward_hook(lambda _m, _i, _o: steps.append(1))
    try:
        [text] = W.generate(
            loaded,
            [tone(1.0, 300)],
            "en" if multilingual else None,
            "transcribe",
            max_new_tokens=requested,
        )
    finally:
        hook.remove()
    assert len(steps) == new_tokens  # one decoder step per new token
    assert text.capped
