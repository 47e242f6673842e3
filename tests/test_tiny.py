"""The tiny offline Whisper (asrtune.models.tiny) and the shipped spelling map."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor
from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

from asrtune.models.tiny import (
    SAMPLE_SENTENCES,
    build_tiny_whisper_tokenizer,
    make_tiny_whisper,
)
from asrtune.resources import english_spelling_mapping


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        True: make_tiny_whisper(root / "multi", multilingual=True),
        False: make_tiny_whisper(root / "en", multilingual=False),
    }


def _features(processor: WhisperProcessor, seconds: tuple[float, ...]) -> torch.Tensor:
    rng = np.random.default_rng(0)
    audio = [0.1 * rng.standard_normal(int(16000 * s)).astype(np.float32) for s in seconds]
    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
    return features.input_features


def _ids(tok, *tokens: str) -> list[int]:
    return [tok.convert_tokens_to_ids(t) for t in tokens]


def test_special_token_layout() -> None:
    tok = build_tiny_whisper_tokenizer()
    eot, sot = _ids(tok, "<|endoftext|>", "<|startoftranscript|>")
    assert 400 <= eot <= 600  # BPE vocab incl. 256 bytes comes first
    assert sot == eot + 1
    assert _ids(tok, "<|en|>", "<|zh|>", "<|fr|>") == [sot + 1, sot + 2, sot + 7]
    translate, transcribe, notimestamps = _ids(
        tok, "<|translate|>", "<|transcribe|>", "<|notimestamps|>"
    )
    assert transcribe == translate + 1
    assert tok.timestamp_ids()[0] == notimestamps + 1
    assert tok.timestamp_ids()[-1] == len(tok) - 1 == _ids(tok, "<|30.00|>")[0]
    # Deterministic: a second build is identical.
    assert build_tiny_whisper_tokenizer().get_vocab() == tok.get_vocab()


def test_prefix_tokens() -> None:
    tok = build_tiny_whisper_tokenizer(multilingual=True)
    sot, fr, transcribe, nots, eot = _ids(
        tok,
        "<|startoftranscript|>",
        "<|fr|>",
        "<|transcribe|>",
        "<|notimestamps|>",
        "<|endoftext|>",
    )
    tok.set_prefix_tokens(language="fr", task="transcribe")
    ids = tok("bonjour").input_ids
    assert ids[:4] == [sot, fr, transcribe, nots]
    assert ids[-1] == eot and len(ids) > 5
    tok.set_prefix_tokens(language="french", task="translate")
    assert tok("x").input_ids[:3] == [sot, fr, _ids(tok, "<|translate|>")[0]]

    en = build_tiny_whisper_tokenizer(multilingual=False)
    assert en("hello").input_ids[:2] == [sot, nots]
    assert en("hello").input_ids[-1] == eot


def test_decode_round_trip() -> None:
    tok = build_tiny_whisper_tokenizer()
    tok.set_prefix_tokens(language="de", task="transcribe")
    for lang in ("en", "fr", "de"):
        for sentence in SAMPLE_SENTENCES[lang]:
            assert tok.decode(tok(sentence).input_ids, skip_special_tokens=True) == sentence
    # Unseen scripts fall back to bytes and still round-trip.
    assert tok.decode(tok("Hola ¿qué tal? 日本").input_ids, skip_special_tokens=True) == (
        "Hola ¿qué tal? 日本"
    )
    # Timestamp tokens: kept out of plain text, available as offsets.
    ids = [
        *_ids(tok, "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|0.00|>"),
        *tok.encode(" Hello there.", add_special_tokens=False),
        *_ids(tok, "<|1.50|>", "<|endoftext|>"),
    ]
    assert tok.decode(ids, skip_special_tokens=True) == " Hello there."
    offsets = tok.decode(ids, skip_special_tokens=True, output_offsets=True)["offsets"]
    assert offsets == [{"text": " Hello there.", "timestamp": (0.0, 1.5)}]


def test_checkpoint_loads_trains_and_generates(tiny_dirs: dict[bool, Path]) -> None:
    folder = tiny_dirs[True]
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    processor = WhisperProcessor.from_pretrained(folder)
    tok = processor.tokenizer
    fe = processor.feature_extractor
    assert fe.n_samples // fe.hop_length == 2 * model.config.max_source_positions == 3000
    assert len(tok) == model.config.vocab_size

    feats = _features(processor, (1.0, 2.5))
    assert feats.shape == (2, 80, 3000)
    tok.set_prefix_tokens(language="fr", task="transcribe")
    batch = tok(["bonjour", "le chat dort sur le canapé"], padding=True, return_tensors="pt")
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    # Standard recipe: the decoder start token is prepended by the model (shift right), so
    # labels may keep the leading <|startoftranscript|> or drop it; both must give a loss.
    loss = model(input_features=feats, labels=labels[:, 1:]).loss
    assert math.isfinite(loss.item())
    loss.backward()
    assert model.model.encoder.conv1.weight.grad is not None

    model.eval()
    prefix = tok.prefix_tokens  # [sot, <|fr|>, <|transcribe|>, <|notimestamps|>]
    out = model.generate(
        feats, language="fr", task="transcribe", max_new_tokens=4, return_dict_in_generate=True
    )
    assert out.sequences[:, : len(prefix)].tolist() == [prefix, prefix]
    assert out.sequences.shape[1] <= len(prefix) + 4
    # Plain generate returns the new tokens only; decoding them must work.
    new = model.generate(feats, language="fr", task="transcribe", max_new_tokens=4)
    assert new.shape[0] == 2 and int(new.max()) < len(tok)
    assert all(isinstance(t, str) for t in processor.batch_decode(new, skip_special_tokens=True))
    # Loaded tokenizer also carries the spelling map (hub tokenizers' normalizer.json).
    assert tok.decode(tok("The Colour").input_ids, normalize=True) == "the color"


def test_english_only_checkpoint(tiny_dirs: dict[bool, Path]) -> None:
    folder = tiny_dirs[False]
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    sot, nots = _ids(processor.tokenizer, "<|startoftranscript|>", "<|notimestamps|>")
    assert model.generation_config.is_multilingual is False
    feats = _features(processor, (1.0,))
    out = model.generate(feats, max_new_tokens=3, return_dict_in_generate=True)
    assert out.sequences[0, :2].tolist() == [sot, nots]
    with pytest.raises(ValueError):
        model.generate(feats, language="fr")


def test_same_seed_same_weights(tmp_path: Path) -> None:
    a = WhisperForConditionalGeneration.from_pretrained(make_tiny_whisper(tmp_path / "a", seed=3))
    b = WhisperForConditionalGeneration.from_pretrained(make_tiny_whisper(tmp_path / "b", seed=3))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def test_english_spelling_mapping() -> None:
    mapping = english_spelling_mapping()
    assert len(mapping) > 1000
    assert mapping["colour"] == "color"
    normalizer = EnglishTextNormalizer(mapping)
    assert normalizer("The colour of the theatre") == "the color of the theater"
