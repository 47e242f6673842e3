"""Tiny random Voxtral checkpoints that load with ``from_pretrained`` and need no network.

:func:`make_tiny_voxtral` writes a folder that ``VoxtralForConditionalGeneration`` and
``VoxtralProcessor`` (``AutoProcessor``) load like ``mistralai/Voxtral-Mini-3B-2507``, with

* a tekken tokenizer (``tekken.json``, version v7) for mistral-common: the real special-token
  layout (1000 control tokens, ``<s>`` 1, ``</s>`` 2, ``[INST]`` 3, ``[/INST]`` 4, ``<pad>`` 11,
  ``[AUDIO]`` 24, ``[BEGIN_AUDIO]`` 25, ``[TRANSCRIBE]`` 34) followed by the first
  :data:`TEXT_VOCAB_SIZE` byte-level BPE ranks of the tekken vocabulary that mistral-common
  ships (``mistral_common/data/tekken_240911.json``, the same ranks as Voxtral's), so text
  token ``1000 + r`` means what it means in the real model for every rank ``r`` kept. The
  256 single-byte ranks come first, so any text encodes;
* an audio section with 0.8-s chunks instead of 30-s ones: mistral-common pads audio to a
  multiple of :data:`CHUNK_SECONDS` and emits 12.5 ``[AUDIO]`` tokens per second, i.e. 10 per
  chunk, exactly what the tiny encoder produces per chunk;
* a ``WhisperFeatureExtractor`` with 128 mel bins and ``chunk_length=0.8`` (12 800 samples,
  80 frames per chunk), matching the encoder: it accepts ``2 * max_source_positions = 80``
  frames per chunk and its 40 positions are pooled 4 to 1 into 10 audio embeddings;
* a model of ~0.16 M parameters: a llama text model (hidden 32, 2 layers, 4 heads, 2 kv
  heads, head_dim 8, vocabulary 2000) and a Voxtral (Whisper-like) audio encoder (hidden 16,
  2 layers, 2 heads).

Everything Voxtral-specific is kept (the prompt ``<s>[INST][BEGIN_AUDIO][AUDIO]xN[/INST]``,
``lang:xx``, ``[TRANSCRIBE]``; several chunks per utterance; ``audio_token_id`` 24, which
``VoxtralProcessor`` hard-codes); only the sizes and the chunk length shrink.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = [
    "CHUNK_SECONDS",
    "NUM_SPECIAL_TOKENS",
    "SPECIAL_TOKENS",
    "TEXT_VOCAB_SIZE",
    "VOXTRAL_SIZES",
    "make_tiny_voxtral",
    "tiny_tekken",
    "tiny_voxtral_config",
]

#: Control tokens before the text vocabulary, as in Voxtral's tekken.json.
NUM_SPECIAL_TOKENS = 1000
#: Text (BPE) ranks kept from mistral-common's tekken vocabulary: 256 bytes + 744 merges.
TEXT_VOCAB_SIZE = 1000
#: Seconds of audio per encoder chunk (30 in the real model).
CHUNK_SECONDS = 0.8
SAMPLE_RATE = 16000
HOP_LENGTH = 160
NUM_MEL_BINS = 128
#: Audio tokens per second (mistral-common's frame_rate; the real model's too).
FRAME_RATE = 12.5
#: Encoder positions per chunk: mel frames per chunk / 2 (conv2 has stride 2).
MAX_SOURCE_POSITIONS = int(CHUNK_SECONDS * SAMPLE_RATE / HOP_LENGTH) // 2
AUDIO_HIDDEN = 16
#: Encoder frames pooled into one audio embedding (intermediate_size / hidden_size).
POOL = 4

#: Named control tokens by rank; the others are ``<SPECIAL_i>`` fillers, as in the real file.
SPECIAL_TOKENS: dict[int, str] = {
    0: "<unk>",
    1: "<s>",
    2: "</s>",
    3: "[INST]",
    4: "[/INST]",
    5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]",
    7: "[TOOL_RESULTS]",
    8: "[/TOOL_RESULTS]",
    9: "[TOOL_CALLS]",
    10: "[IMG]",
    11: "<pad>",
    12: "[IMG_BREAK]",
    13: "[IMG_END]",
    14: "[PREFIX]",
    15: "[MIDDLE]",
    16: "[SUFFIX]",
    17: "[SYSTEM_PROMPT]",
    18: "[/SYSTEM_PROMPT]",
    19: "[TOOL_CONTENT]",
    24: "[AUDIO]",
    25: "[BEGIN_AUDIO]",
    32: "[ARGS]",
    33: "[CALL_ID]",
    34: "[TRANSCRIBE]",
}
AUDIO_TOKEN_ID = 24
BOS_ID, EOS_ID, PAD_ID = 1, 2, 11


def _source_tekken() -> Path:
    try:
        import mistral_common
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from asrtune.errors import AsrtuneError

        raise AsrtuneError(
            "a Voxtral tokenizer needs mistral-common: pip install 'mistral-common[audio]'"
        ) from exc
    return Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"


def tiny_tekken(chunk_seconds: float = CHUNK_SECONDS) -> dict:
    """The tiny tekken.json as a dict (see the module docstring for its layout), with audio
    chunks of ``chunk_seconds``."""
    source = json.loads(_source_tekken().read_text(encoding="utf-8"))
    vocab = source["vocab"][:TEXT_VOCAB_SIZE]
    if [t["rank"] for t in vocab] != list(range(TEXT_VOCAB_SIZE)):
        raise RuntimeError("mistral-common's tekken vocabulary is not in rank order")
    specials = [
        {"rank": i, "token_str": SPECIAL_TOKENS.get(i, f"<SPECIAL_{i}>"), "is_control": True}
        for i in range(NUM_SPECIAL_TOKENS)
    ]
    return {
        "config": {
            "pattern": source["config"]["pattern"],
            "num_vocab_tokens": TEXT_VOCAB_SIZE,
            "default_vocab_size": NUM_SPECIAL_TOKENS + TEXT_VOCAB_SIZE,
            "default_num_special_tokens": NUM_SPECIAL_TOKENS,
            "version": "v7",
        },
        "vocab": vocab,
        "special_tokens": specials,
        "audio": {
            "sampling_rate": SAMPLE_RATE,
            "frame_rate": FRAME_RATE,
            "chunk_length_s": chunk_seconds,
            "audio_encoding_config": {
                "num_mel_bins": NUM_MEL_BINS,
                "hop_length": HOP_LENGTH,
                "window_size": 400,
            },
        },
    }


#: Architectures :func:`make_tiny_voxtral` can build: the tiny test model, and the
#: dimensions of ``mistralai/Voxtral-Mini-3B-2507`` (its config.json: a Whisper-large-v3-like
#: audio encoder on 30-s chunks, a 3B llama text model), for benchmarks. ``audio`` and
#: ``text`` update the tiny config; ``chunk_seconds`` sets the tokenizer's and the feature
#: extractor's chunk. The output layer keeps the real vocabulary size.
VOXTRAL_SIZES: dict[str, dict] = {
    "tiny": {"chunk_seconds": CHUNK_SECONDS, "audio": {}, "text": {}},
    "mini-3b": {
        "chunk_seconds": 30.0,
        "audio": {
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "num_attention_heads": 20,
            "max_source_positions": 1500,
        },
        "text": {
            "vocab_size": 131072,
            "hidden_size": 3072,
            "intermediate_size": 8192,
            "num_hidden_layers": 30,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "max_position_embeddings": 131072,
            "rope_theta": 100_000_000.0,
            "initializer_range": 0.02,
        },
    },
}


def tiny_voxtral_config(size: str = "tiny"):
    """``VoxtralConfig`` of the tiny model (10 audio tokens per 80-frame chunk), or of
    another architecture from :data:`VOXTRAL_SIZES`."""
    from transformers import VoxtralConfig

    dims = VOXTRAL_SIZES[size]
    audio = {
        "model_type": "voxtral_encoder",
        "hidden_size": AUDIO_HIDDEN,
        "intermediate_size": AUDIO_HIDDEN * POOL,  # also the projector's input width
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_mel_bins": NUM_MEL_BINS,
        "max_source_positions": MAX_SOURCE_POSITIONS,
        **dims["audio"],
    }
    text = {
        "model_type": "llama",
        "vocab_size": NUM_SPECIAL_TOKENS + TEXT_VOCAB_SIZE,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "max_position_embeddings": 4096,
        # 5x the usual init: with 0.02, a frozen 32-wide lm_head barely moves the logits,
        # and LoRA on the projections could not lower the loss in a few steps
        "initializer_range": 0.1,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        **dims["text"],
    }
    return VoxtralConfig(audio_config=audio, text_config=text, audio_token_id=AUDIO_TOKEN_ID)


def make_tiny_voxtral(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Write a tiny random Voxtral checkpoint + processor to ``out_dir``; returns the path.
    ``size``: another architecture from :data:`VOXTRAL_SIZES`, same tokenizer.

    Files: ``config.json``, ``generation_config.json``, ``model.safetensors`` (float32),
    ``tekken.json`` and ``processor_config.json`` (the 0.8-s feature extractor). Weights
    depend only on ``seed``; the caller's torch RNG state is left untouched. Offline.
    """
    from transformers import (
        GenerationConfig,
        VoxtralForConditionalGeneration,
        VoxtralProcessor,
        WhisperFeatureExtractor,
    )
    from transformers.tokenization_mistral_common import MistralCommonBackend

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chunk_seconds = VOXTRAL_SIZES[size]["chunk_seconds"]
    (out / "tekken.json").write_text(json.dumps(tiny_tekken(chunk_seconds)), encoding="utf-8")
    tokenizer = MistralCommonBackend.from_pretrained(str(out))
    extractor = WhisperFeatureExtractor(
        feature_size=NUM_MEL_BINS,
        sampling_rate=SAMPLE_RATE,
        hop_length=HOP_LENGTH,
        chunk_length=chunk_seconds,
        n_fft=400,
    )
    config = tiny_voxtral_config(size)
    if int(extractor.nb_max_frames) != 2 * config.audio_config.max_source_positions:
        raise RuntimeError("feature extractor chunk does not match the encoder input length")
    VoxtralProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VoxtralForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID
    )
    model.save_pretrained(out)
    return out
