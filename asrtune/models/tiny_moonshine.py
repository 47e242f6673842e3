"""Tiny random Moonshine checkpoints that load with ``from_pretrained`` and need no network.

:func:`make_tiny_moonshine` writes a folder that ``MoonshineForConditionalGeneration``
(``AutoModelForSpeechSeq2Seq``) and ``AutoProcessor`` (a ``Wav2Vec2Processor``, as for
``UsefulSensors/moonshine-tiny``) load, with

* a Llama-style tokenizer (``TokenizersBackend``): ``<unk>`` ``<s>`` ``</s>`` at ids 0-2,
  the 256 byte-fallback tokens ``<0x00>`` .. ``<0xFF>`` at ids 3-258 (as in the real
  32 768-token vocabulary), then a BPE of SentencePiece-style ``▁`` word starts trained
  here, offline, with the ``tokenizers`` library on the sample sentences of
  :mod:`asrtune.models.tiny`; any text encodes (unknown characters fall back to bytes) and
  decodes back. It adds no special tokens when encoding; ``<s>`` starts the decoder
  (``decoder_start_token_id`` 1) and ``</s>`` (id 2) ends a transcript;
* the real feature extractor: a ``Wav2Vec2FeatureExtractor`` that passes raw 16-kHz audio
  through (no normalisation, no mel, no 30-s padding; zero padding and a sample mask in a
  batch);
* a model of ~0.06 M parameters with the real encoder front end (three convolutions of
  strides 64, 3 and 2: one encoder position per 384 samples, 41.7 per second) and the real
  rotary attention (partial rotary factor 0.9, head dims padded to a multiple of 8), hidden
  size 32, 2 heads, one encoder and one decoder layer.

``size`` "moonshine-tiny" / "moonshine-base" builds the real architectures of
``UsefulSensors/moonshine-tiny`` and ``-base`` instead (random weights, this tokenizer, the
real 32 768-row vocabulary; :data:`MOONSHINE_SIZES`), for benchmarks.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch

__all__ = [
    "BOS_TOKEN",
    "BPE_VOCAB_SIZE",
    "EOS_TOKEN",
    "MOONSHINE_SIZES",
    "UNK_TOKEN",
    "make_tiny_moonshine",
    "tiny_moonshine_config",
    "tiny_moonshine_tokenizer",
]

UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
#: Tokens the BPE learns on top of the specials and the 256 byte tokens (characters and
#: merges).
BPE_VOCAB_SIZE = 400
#: The decoder length of the real checkpoints' config.json (rotary positions, no learned
#: table: the longest transcript they were trained to write).
REAL_MAX_POSITIONS = 194

#: Architectures :func:`make_tiny_moonshine` can build: the tiny test model, and the
#: dimensions of ``UsefulSensors/moonshine-tiny`` (27.1 M parameters) and ``-base``
#: (61.5 M): hidden size, MLP width, layers (encoder = decoder), 8 heads, the 32 768-token
#: vocabulary with tied embeddings. Each updates the tiny config.
MOONSHINE_SIZES: dict[str, dict] = {
    "tiny": {},
    "moonshine-tiny": {
        "vocab_size": 32768,
        "hidden_size": 288,
        "intermediate_size": 1152,
        "encoder_num_hidden_layers": 6,
        "decoder_num_hidden_layers": 6,
        "encoder_num_attention_heads": 8,
        "decoder_num_attention_heads": 8,
        "max_position_embeddings": REAL_MAX_POSITIONS,
        "initializer_range": 0.02,
    },
    "moonshine-base": {
        "vocab_size": 32768,
        "hidden_size": 416,
        "intermediate_size": 1664,
        "encoder_num_hidden_layers": 8,
        "decoder_num_hidden_layers": 8,
        "encoder_num_attention_heads": 8,
        "decoder_num_attention_heads": 8,
        "max_position_embeddings": REAL_MAX_POSITIONS,
        "initializer_range": 0.02,
    },
}


def _byte_tokens() -> list[str]:
    return [f"<0x{value:02X}>" for value in range(256)]


@cache
def _train_bpe() -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    """A ``▁``-word-start BPE on the sample sentences: ``(vocab items, merges)`` with ids
    ``0 .. len-1``, characters first. Deterministic."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from asrtune.models.tiny import sample_corpus

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE, min_frequency=2, show_progress=False, special_tokens=[]
    )
    tokenizer.train_from_iterator(sample_corpus() * 2, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    vocab = tuple(sorted(model["vocab"].items(), key=lambda item: item[1]))
    merges = tuple(
        tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]
    )
    return vocab, merges


def tiny_moonshine_tokenizer():
    """The tokenizer described in the module docstring (``<s>`` BOS, ``</s>`` EOS,
    ``<unk>``; no pad token, as in the real one)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import TokenizersBackend

    trained, merges = _train_bpe()
    vocab: dict[str, int] = {}
    for token in (UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, *_byte_tokens()):
        vocab[token] = len(vocab)
    for token, _ in trained:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(
        models.BPE(
            vocab=vocab, merges=list(merges), unk_token=UNK_TOKEN, byte_fallback=True, fuse_unk=True
        )
    )
    backend.normalizer = normalizers.Sequence([])
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    backend.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    tokenizer = TokenizersBackend(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=REAL_MAX_POSITIONS,
    )
    for token, expected in ((UNK_TOKEN, 0), (BOS_TOKEN, 1), (EOS_TOKEN, 2)):
        if tokenizer.convert_tokens_to_ids(token) != expected:
            raise RuntimeError(f"tiny Moonshine tokenizer: {token} is not at id {expected}")
    return tokenizer


def tiny_moonshine_config(size: str = "tiny", tokenizer=None):
    """``MoonshineConfig`` of the tiny model, or of another architecture from
    :data:`MOONSHINE_SIZES`. Special ids are the real ones (BOS = decoder start 1, EOS 2)."""
    from transformers import MoonshineConfig

    tokenizer = tokenizer or tiny_moonshine_tokenizer()
    options = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "encoder_num_hidden_layers": 1,
        "decoder_num_hidden_layers": 1,
        "encoder_num_attention_heads": 2,
        "decoder_num_attention_heads": 2,
        "pad_head_dim_to_multiple_of": 8,
        "encoder_hidden_act": "gelu",
        "decoder_hidden_act": "silu",
        "max_position_embeddings": REAL_MAX_POSITIONS,
        # 5x the usual init: a 32-wide random model whose outputs move within a few steps
        "initializer_range": 0.1,
        "decoder_start_token_id": 1,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": True,
        "partial_rotary_factor": 0.9,
        **MOONSHINE_SIZES[size],
    }
    return MoonshineConfig(**options)


def make_tiny_moonshine(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Write a tiny random Moonshine checkpoint + processor to ``out_dir``; returns the path.
    ``size``: another architecture from :data:`MOONSHINE_SIZES`, same tokenizer.

    Files: ``config.json``, ``generation_config.json`` (greedy, starts at ``<s>``, stops at
    ``</s>``), ``model.safetensors``
    (float32), ``tokenizer.json`` / ``tokenizer_config.json`` and
    ``processor_config.json`` (the feature extractor's settings). Weights depend only on
    ``seed``; the caller's torch RNG state is left untouched. Offline.
    """
    from transformers import (
        GenerationConfig,
        MoonshineForConditionalGeneration,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Processor,
    )

    if size not in MOONSHINE_SIZES:
        raise ValueError(f"moonshine sizes: {', '.join(MOONSHINE_SIZES)}, not {size!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_moonshine_tokenizer()
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=False,
        return_attention_mask=True,
        padding_side="right",
    )
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)
    config = tiny_moonshine_config(size, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MoonshineForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=1,
        bos_token_id=1,
        eos_token_id=2,
        do_sample=False,
    )
    model.save_pretrained(out)
    return out
