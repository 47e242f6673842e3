"""Tiny random Qwen3-ASR checkpoints that load with ``from_pretrained`` and need no network.

:func:`make_tiny_qwen3_asr` writes a folder that ``Qwen3ASRForConditionalGeneration`` and
``Qwen3ASRProcessor`` (``AutoProcessor``) load like ``Qwen/Qwen3-ASR-0.6B-hf``, with

* a ``Qwen2Tokenizer``: a byte-level BPE of :data:`BPE_VOCAB_SIZE` tokens trained here,
  offline, with Qwen2's pre-tokenizer on the sample sentences of :mod:`asrtune.models.tiny`
  and the ``language <Name>`` lines the model writes, followed by the special tokens the
  real processor and chat template use (:data:`SPECIAL_TOKENS`: ``<|endoftext|>`` (pad),
  ``<|im_start|>``, ``<|im_end|>`` (EOS), ``<|audio_start|>``, ``<|audio_end|>``,
  ``<|audio_pad|>`` (the audio placeholder), then ``<asr_text>`` and ``<timestamp>``, which
  are added but not special, as in the real tokenizer: ``decode(skip_special_tokens=True)``
  keeps ``<asr_text>``, which the processor's ``parse_output`` splits on);
* a chat template that renders transcription requests exactly as the real checkpoints'
  does (:data:`CHAT_TEMPLATE`)::

      <|im_start|>system\\n{context}<|im_end|>\\n<|im_start|>user\\n
      <|audio_start|><|audio_pad|><|audio_end|><|im_end|>\\n<|im_start|>assistant\\n
      [language English<asr_text>]

  (the processor repeats ``<|audio_pad|>`` once per audio embedding; the bracketed
  prefill is there when the language is forced);
* the real ``Qwen3ASRFeatureExtractor`` (128 log-mel bins, 10-ms hop) and the real encoder
  windowing (1-s chunks of 100 frames, 13 audio embeddings per full chunk, attention over
  8-s windows), so audio token counts are those of the real model;
* a model of ~44 k parameters: a Qwen3 text model (hidden 32, 2 layers, 4 heads, 2 kv
  heads, head_dim 8, tied embeddings) and a Qwen3-ASR audio encoder (hidden 16, 2 layers,
  2 heads, 8 convolution channels).

``size`` "0.6b" / "1.7b" builds the real architectures instead (random weights, this
tokenizer, the real 151 936-row vocabulary; :data:`QWEN3_ASR_SIZES`), for benchmarks.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

__all__ = [
    "ASR_TEXT",
    "AUDIO_TOKEN",
    "BPE_VOCAB_SIZE",
    "CHAT_TEMPLATE",
    "QWEN3_ASR_SIZES",
    "SPECIAL_TOKENS",
    "make_tiny_qwen3_asr",
    "tiny_qwen3_asr_config",
    "tiny_qwen3_asr_tokenizer",
]

#: Target size of the trained byte-level BPE vocabulary (256 byte symbols included).
BPE_VOCAB_SIZE = 512
PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
AUDIO_START = "<|audio_start|>"
AUDIO_END = "<|audio_end|>"
AUDIO_TOKEN = "<|audio_pad|>"
ASR_TEXT = "<asr_text>"
TIMESTAMP = "<timestamp>"
#: Special tokens after the BPE vocabulary, in id order (the real ids are 151643-151676).
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END, AUDIO_START, AUDIO_END, AUDIO_TOKEN)
#: Added tokens that are not special (decoding keeps them), after the special ones; the real
#: ids are 151704 and 151705.
PLAIN_ADDED_TOKENS = (ASR_TEXT, TIMESTAMP)
#: Languages whose ``language <Name>`` line the BPE is trained on (a few merges for them).
_LANGUAGE_LINES = ("English", "French", "German", "None")

#: The chat template of transcription requests: a system turn with the context text (empty
#: by default), a user turn with one audio placeholder per audio item, the assistant turns
#: (their text, then ``<|im_end|>``, marked for assistant-token masks), and the generation
#: prompt. ``apply_transcription_request`` prefills the assistant turn with
#: ``language <Name><asr_text>`` to force a language (``continue_final_message``). It renders
#: what the real checkpoints' template renders for these conversations.
CHAT_TEMPLATE = (
    "{%- set system = namespace(text='') -%}"
    "{%- set user = namespace(audio='') -%}"
    "{%- for message in messages -%}"
    "{%- if message.content is string -%}"
    "{%- if message.role == 'system' -%}"
    "{%- set system.text = system.text + message.content -%}"
    "{%- endif -%}"
    "{%- else -%}"
    "{%- for part in message.content -%}"
    "{%- if message.role == 'system' and part.type == 'text' and part.text is defined -%}"
    "{%- set system.text = system.text + part.text -%}"
    "{%- endif -%}"
    "{%- if part.type == 'audio' or 'audio' in part or 'audio_url' in part -%}"
    "{%- set user.audio = user.audio + '<|audio_start|><|audio_pad|><|audio_end|>' -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_start|>system\\n' + system.text + '<|im_end|>\\n' -}}"
    "{{- '<|im_start|>user\\n' + user.audio + '<|im_end|>\\n' -}}"
    "{%- for message in messages if message.role == 'assistant' -%}"
    "{%- set reply = namespace(text='') -%}"
    "{%- if message.content is string -%}"
    "{%- set reply.text = message.content -%}"
    "{%- else -%}"
    "{%- for part in message.content if part.type == 'text' and part.text is defined -%}"
    "{%- set reply.text = reply.text + part.text -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{% generation %}{{- reply.text + '<|im_end|>\\n' -}}{% endgeneration %}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)


def _training_text() -> list[str]:
    from asrtune.models.tiny import sample_corpus

    # each line twice: the BPE trainer merges pairs seen at least twice
    return sample_corpus() + [f"language {name}" for name in _LANGUAGE_LINES] * 2


@cache
def _train_bpe() -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    """A byte-level BPE (Qwen2's pre-tokenizer) on the sample text: ``(vocab items,
    merges)``, ids ``0 .. len-1`` with the 256 byte symbols first. Deterministic."""
    from tokenizers import Regex, pre_tokenizers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    from asrtune.models.tiny import train_byte_level_bpe

    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return train_byte_level_bpe(pre_tokenizer, _training_text(), BPE_VOCAB_SIZE)


def tiny_qwen3_asr_tokenizer():
    """A ``Qwen2Tokenizer``: the trained BPE, then :data:`SPECIAL_TOKENS` and
    :data:`PLAIN_ADDED_TOKENS` in that order; ``<|im_end|>`` is EOS, ``<|endoftext|>`` pad,
    and ``audio_token`` / ``audio_bos_token`` / ``audio_eos_token`` name the audio tokens
    (what ``Qwen3ASRProcessor`` reads)."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab_items, merges = _train_bpe()
    vocab = dict(vocab_items)
    for token in (*SPECIAL_TOKENS, *PLAIN_ADDED_TOKENS):  # fixed ids, right after the BPE
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[tuple(m) for m in merges],
        unk_token=None,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        audio_token=AUDIO_TOKEN,
        audio_bos_token=AUDIO_START,
        audio_eos_token=AUDIO_END,
        extra_special_tokens=[IM_START],
        clean_up_tokenization_spaces=False,
        model_max_length=65536,
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        special_tokens=True,
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t in PLAIN_ADDED_TOKENS]
    )
    for token in (*SPECIAL_TOKENS, *PLAIN_ADDED_TOKENS):
        if tokenizer.convert_tokens_to_ids(token) != vocab[token]:
            raise RuntimeError(f"tiny Qwen3-ASR tokenizer: {token} is not at id {vocab[token]}")
    return tokenizer


#: Architectures :func:`make_tiny_qwen3_asr` can build: the tiny test model, and the
#: dimensions of ``Qwen/Qwen3-ASR-0.6B`` and ``-1.7B`` (their config.json: audio encoder,
#: Qwen3 text model with tied embeddings and the 151 936-token vocabulary), for benchmarks.
#: ``audio`` and ``text`` update the tiny config.
QWEN3_ASR_SIZES: dict[str, dict[str, dict]] = {
    "tiny": {"audio": {}, "text": {}},
    "0.6b": {
        "audio": {
            "d_model": 896,
            "encoder_layers": 18,
            "encoder_attention_heads": 14,
            "encoder_ffn_dim": 3584,
            "downsample_hidden_size": 480,
            "output_dim": 1024,
            "initializer_range": 0.02,
        },
        "text": {
            "vocab_size": 151936,
            "hidden_size": 1024,
            "intermediate_size": 3072,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "initializer_range": 0.02,
        },
    },
    "1.7b": {
        "audio": {
            "d_model": 1024,
            "encoder_layers": 24,
            "encoder_attention_heads": 16,
            "encoder_ffn_dim": 4096,
            "downsample_hidden_size": 480,
            "output_dim": 2048,
            "initializer_range": 0.02,
        },
        "text": {
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "initializer_range": 0.02,
        },
    },
}


def tiny_qwen3_asr_config(size: str = "tiny", tokenizer=None):
    """``Qwen3ASRConfig`` of the tiny model, or of another architecture from
    :data:`QWEN3_ASR_SIZES`; special token ids are those of ``tokenizer`` (default: the tiny
    one). The encoder windowing (``n_window`` 50, ``n_window_infer`` 800) is the real one."""
    from transformers import Qwen3ASRConfig

    tokenizer = tokenizer or tiny_qwen3_asr_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    dims = QWEN3_ASR_SIZES[size]
    text = {
        "model_type": "qwen3",
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "max_position_embeddings": 65536,
        "rope_theta": 1_000_000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        # 5x the usual init: with 0.02 a frozen 32-wide (tied) output layer barely moves the
        # logits, and LoRA on the projections could not lower the loss in a few steps
        "initializer_range": 0.1,
        "bos_token_id": ids(PAD_TOKEN),
        "eos_token_id": ids(IM_END),
        "pad_token_id": ids(PAD_TOKEN),
        **dims["text"],
    }
    audio = {
        "model_type": "qwen3_asr_encoder",
        "num_mel_bins": 128,
        "d_model": 16,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 32,
        "downsample_hidden_size": 8,
        "n_window": 50,
        "n_window_infer": 800,
        "max_position_embeddings": 13,
        "initializer_range": 0.1,
        **dims["audio"],
    }
    audio.setdefault("output_dim", text["hidden_size"])
    if audio["output_dim"] != text["hidden_size"]:
        raise ValueError("the projector's output must match the text model's width")
    return Qwen3ASRConfig(
        audio_config=audio,
        text_config=text,
        audio_token_id=ids(AUDIO_TOKEN),
        timestamp_token_id=ids(TIMESTAMP),
        pad_token_id=ids(IM_END),
        eos_token_id=[ids(PAD_TOKEN), ids(IM_END)],
        tie_word_embeddings=True,
    )


def make_tiny_qwen3_asr(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Write a tiny random Qwen3-ASR checkpoint + processor to ``out_dir``; returns the path.
    ``size``: another architecture from :data:`QWEN3_ASR_SIZES`, same tokenizer.

    Files: ``config.json``, ``generation_config.json`` (stops at ``<|endoftext|>`` or
    ``<|im_end|>``, greedy, as the real checkpoints'), ``model.safetensors`` (float32),
    ``tokenizer.json`` / ``tokenizer_config.json``, ``chat_template.jinja`` and
    ``processor_config.json``. Weights depend only on ``seed``; the caller's torch RNG state
    is left untouched. Offline.
    """
    from transformers import (
        GenerationConfig,
        Qwen3ASRFeatureExtractor,
        Qwen3ASRForConditionalGeneration,
        Qwen3ASRProcessor,
    )

    if size not in QWEN3_ASR_SIZES:
        raise ValueError(f"qwen3_asr sizes: {', '.join(QWEN3_ASR_SIZES)}, not {size!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_qwen3_asr_tokenizer()
    extractor = Qwen3ASRFeatureExtractor()
    processor = Qwen3ASRProcessor(
        feature_extractor=extractor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(out)
    config = tiny_qwen3_asr_config(size, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ASRForConditionalGeneration(config)
    ids = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        eos_token_id=[ids(PAD_TOKEN), ids(IM_END)],
        pad_token_id=ids(IM_END),
        do_sample=False,
        max_new_tokens=512,
    )
    model.save_pretrained(out)
    return out
