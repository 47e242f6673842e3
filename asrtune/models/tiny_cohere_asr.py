"""Tiny random Cohere Transcribe checkpoints that load with ``from_pretrained`` and need no
network.

:func:`make_tiny_cohere_asr` writes a folder that ``CohereAsrForConditionalGeneration``
(``AutoModelForSpeechSeq2Seq``) and ``CohereAsrProcessor`` (``AutoProcessor``) load like
``CohereLabs/cohere-transcribe-03-2026``, with

* a SentencePiece-style tokenizer (``TokenizersBackend``, as transformers maps
  ``cohere_asr``): the special tokens first (:data:`SPECIAL_TOKENS`: ``<unk>``,
  ``<|nospeech|>``, ``<pad>`` (id 2), ``<|endoftext|>`` (EOS, id 3),
  ``<|startoftranscript|>`` (BOS, id 4), then the context, punctuation, normalisation,
  timestamp, diarisation and emotion switches and the 14 language tokens that the
  processor's ``get_decoder_prompt_ids(language, punctuation)`` names), then the 256
  byte-fallback tokens, then a BPE of ``▁`` word starts trained here, offline, on the
  sample sentences of :mod:`asrtune.models.tiny` (``▁`` alone is a token: the decoder
  prompt starts with it). Any text encodes and decodes back;
* the real ``CohereAsrFeatureExtractor`` (128 log-mel bins, 10-ms hop, per-utterance
  normalisation, energy-based chunking of audio over 30 s) without dither, so features are
  deterministic;
* a model of ~0.1 M parameters: a Parakeet (FastConformer) encoder with the real 8x
  subsampling (hidden 32, 2 layers, 4 heads) and a transformer decoder (hidden 32, 2
  layers, 4 heads).

``size="03-2026"`` builds the real architecture (:data:`COHERE_ASR_SIZES`: transformers'
``CohereAsrConfig`` defaults, a 48-layer 1280-wide encoder and an 8-layer 1024-wide decoder
over the real 16 384-token vocabulary) with random weights, for benchmarks.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch

__all__ = [
    "COHERE_ASR_SIZES",
    "EOS_TOKEN",
    "LANGUAGES",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "make_tiny_cohere_asr",
    "tiny_cohere_asr_config",
    "tiny_cohere_asr_tokenizer",
]

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<|endoftext|>"
BOS_TOKEN = "<|startoftranscript|>"
UNK_TOKEN = "<unk>"
#: The languages of Cohere Transcribe 03-2026 (the processor's ``LANGUAGES``), in a fixed
#: order.
LANGUAGES = ("ar", "de", "el", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "vi", "zh")
#: Special tokens in id order; pad, EOS and BOS at the real ids 2, 3 and 4.
SPECIAL_TOKENS = (
    UNK_TOKEN,
    "<|nospeech|>",
    PAD_TOKEN,
    EOS_TOKEN,
    BOS_TOKEN,
    "<|startofcontext|>",
    "<|emo:undefined|>",
    "<|pnc|>",
    "<|nopnc|>",
    "<|itn|>",
    "<|noitn|>",
    "<|timestamp|>",
    "<|notimestamp|>",
    "<|diarize|>",
    "<|nodiarize|>",
    *(f"<|{code}|>" for code in LANGUAGES),
)
#: The first token of every decoder prompt (``get_decoder_prompt_ids``): the decoder start,
#: so that ``generate`` keeps the processor's prompt as it is (with another start token it
#: would put that one in front).
PROMPT_START = "▁"
#: Tokens the BPE learns (characters and merges) after the specials and the byte tokens.
BPE_VOCAB_SIZE = 400

#: Architectures :func:`make_tiny_cohere_asr` can build: the tiny test model, and
#: ``03-2026``, the real one (transformers' ``CohereAsrConfig`` defaults, which describe
#: CohereLabs/cohere-transcribe-03-2026). ``encoder`` and ``decoder`` update the tiny config.
COHERE_ASR_SIZES: dict[str, dict[str, dict]] = {
    "tiny": {"encoder": {}, "decoder": {}},
    "03-2026": {
        "encoder": {
            "hidden_size": 1280,
            "num_hidden_layers": 48,
            "num_attention_heads": 8,
            "intermediate_size": 5120,
            "subsampling_conv_channels": 256,
            "initializer_range": 0.02,
        },
        "decoder": {
            "vocab_size": 16384,
            "hidden_size": 1024,
            "num_hidden_layers": 8,
            "num_attention_heads": 8,
            "intermediate_size": 4096,
            "max_position_embeddings": 1024,
            "initializer_range": 0.02,
        },
    },
}


@cache
def _train_bpe() -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    """A ``▁``-word-start BPE on the sample sentences: ``(vocab items, merges)``. Deterministic."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from asrtune.models.tiny import sample_corpus

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=["▁"],
    )
    tokenizer.train_from_iterator(sample_corpus() * 2, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    vocab = tuple(sorted(model["vocab"].items(), key=lambda item: item[1]))
    merges = tuple(
        tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]
    )
    return vocab, merges


def tiny_cohere_asr_tokenizer():
    """The tokenizer described in the module docstring."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import TokenizersBackend

    trained, merges = _train_bpe()
    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *(f"<0x{value:02X}>" for value in range(256))):
        vocab[token] = len(vocab)
    for token, _ in trained:
        vocab.setdefault(token, len(vocab))
    vocab.setdefault("▁", len(vocab))
    backend = Tokenizer(
        models.BPE(
            vocab=vocab, merges=list(merges), unk_token=UNK_TOKEN, byte_fallback=True, fuse_unk=True
        )
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    backend.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    tokenizer = TokenizersBackend(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
    for token in (*SPECIAL_TOKENS, "▁"):
        if tokenizer.convert_tokens_to_ids(token) != vocab[token]:
            raise RuntimeError(f"tiny Cohere ASR tokenizer: {token} is not at id {vocab[token]}")
    return tokenizer


def tiny_cohere_asr_config(size: str = "tiny", tokenizer=None):
    """``CohereAsrConfig`` of the tiny model, or of the real architecture
    (:data:`COHERE_ASR_SIZES`); special ids are the real ones (pad 2, EOS 3, BOS 4)."""
    from transformers import CohereAsrConfig

    tokenizer = tokenizer or tiny_cohere_asr_tokenizer()
    dims = COHERE_ASR_SIZES[size]
    encoder = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "subsampling_conv_channels": 8,
        # 5x the usual init: a 32-wide random model whose outputs move within a few steps
        "initializer_range": 0.1,
        **dims["encoder"],
    }
    decoder = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 1024,
        "initializer_range": 0.1,
        **dims["decoder"],
    }
    return CohereAsrConfig(
        encoder_config=encoder,
        pad_token_id=2,
        eos_token_id=3,
        bos_token_id=4,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids(PROMPT_START),
        **decoder,
    )


def make_tiny_cohere_asr(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Write a tiny random Cohere Transcribe checkpoint + processor to ``out_dir``; returns
    the path. ``size``: the real architecture (``"03-2026"``), same tokenizer.

    Files: ``config.json``, ``generation_config.json`` (greedy, stops at ``<|endoftext|>``),
    ``model.safetensors`` (float32), ``tokenizer.json`` / ``tokenizer_config.json`` and
    ``processor_config.json``. The decoder starts at ``▁``, the prompt's first token
    (:data:`PROMPT_START`). Weights depend only on ``seed``; the caller's torch RNG
    state is left untouched. Offline.
    """
    from transformers import (
        CohereAsrFeatureExtractor,
        CohereAsrForConditionalGeneration,
        CohereAsrProcessor,
        GenerationConfig,
    )

    if size not in COHERE_ASR_SIZES:
        raise ValueError(f"cohere_asr sizes: {', '.join(COHERE_ASR_SIZES)}, not {size!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_cohere_asr_tokenizer()
    extractor = CohereAsrFeatureExtractor(dither=0.0)
    CohereAsrProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)
    config = tiny_cohere_asr_config(size, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CohereAsrForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=4,
        eos_token_id=3,
        pad_token_id=2,
        decoder_start_token_id=config.decoder_start_token_id,
        do_sample=False,
    )
    model.save_pretrained(out)
    return out
