"""Tiny random Canary checkpoints that load with ``from_pretrained`` and need no network.

:func:`make_tiny_canary` writes a folder that ``CanaryForConditionalGeneration``
(``AutoModelForSpeechSeq2Seq``) and ``CanaryProcessor`` (``AutoProcessor``) load like
``nvidia/canary-1b-v2``, with

* a SentencePiece-style BPE tokenizer (``TokenizersBackend``, ``▁`` word starts) trained
  here, offline, on the sample sentences of :mod:`asrtune.models.tiny`, laid out as the real
  one: the control tokens first (:data:`CONTROL_TOKENS`: ``<unk>`` 0, ``<pad>`` 2,
  ``<|endoftext|>`` 3 (EOS), ``<|startoftranscript|>`` 4, ``<|startofcontext|>`` 7 (the
  decoder start), ``<|pnc|>``/``<|nopnc|>``, ``<|noitn|>``, ``<|notimestamp|>``,
  ``<|nodiarize|>``, ``<|emo:undefined|>`` ...), then one ``<|xx|>`` token per language of
  :data:`LANGUAGES` (the 25 of canary-1b-v2), then the text pieces;
* a chat template (:data:`CHAT_TEMPLATE`) that renders the processor's
  ``apply_transcription_request`` conversation as Canary-2's decoder prompt::

      <|startofcontext|><|startoftranscript|><|emo:undefined|><|SRC|><|TGT|>
      <|pnc|>|<|nopnc|><|noitn|><|notimestamp|><|nodiarize|>

  and an assistant turn (for training) as its text followed by ``<|endoftext|>``;
* the real ``ParakeetFeatureExtractor`` with 128 mel bins (10-ms hop);
* a model of ~0.1 M parameters: a FastConformer encoder (hidden 32, 2 layers, 4 heads, the
  real 8x subsampling) and a Transformer decoder (hidden 32, 2 layers, 4 heads, head_dim 8,
  tied output layer). Dropout is off.

``size="1b-v2"`` builds the real architecture (:data:`CANARY_SIZES`, transformers'
``CanaryConfig`` defaults, which are canary-1b-v2's config.json: a 32-layer FastConformer
of width 1024 on 128 mel bins and an 8-layer decoder over 16 384 tokens) with random
weights and this tokenizer, for benchmarks and parameter counts.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CANARY_SIZES",
    "CHAT_TEMPLATE",
    "CONTROL_TOKENS",
    "LANGUAGES",
    "TEXT_VOCAB_SIZE",
    "make_tiny_canary",
    "tiny_canary_config",
    "tiny_canary_tokenizer",
]

#: Pieces trained on the sample sentences (the real tokenizer: 16 384 tokens in all).
TEXT_VOCAB_SIZE = 320
UNK = "<unk>"
PAD = "<pad>"
EOS = "<|endoftext|>"
SOT = "<|startoftranscript|>"
SOC = "<|startofcontext|>"
#: Canary-2's control tokens, in id order: pad (2), EOS (3), BOS (4) and the decoder start
#: (7) are at the ids of nvidia/canary-1b-v2's config.json.
CONTROL_TOKENS = (
    UNK,
    "<|nospeech|>",
    PAD,
    EOS,
    SOT,
    "<|pnc|>",
    "<|nopnc|>",
    SOC,
    "<|itn|>",
    "<|noitn|>",
    "<|timestamp|>",
    "<|notimestamp|>",
    "<|diarize|>",
    "<|nodiarize|>",
    "<|spkchange|>",
    "<|audioseparator|>",
    "<|emo:undefined|>",
)
#: canary-1b-v2's languages (transformers' ``CanaryProcessor`` list), in its order.
LANGUAGES = (
    "bg", "hr", "cs", "da", "nl", "en", "et", "fi", "fr", "de", "el", "hu", "it",
    "lv", "lt", "mt", "pl", "pt", "ro", "sk", "sl", "es", "sv", "ru", "uk",
)  # fmt: skip

#: Renders a transcription request (user turn: the audio and a text part with
#: ``source_language``, ``target_language`` and ``punctuation``, as
#: ``CanaryProcessor.apply_transcription_request`` builds it) as the decoder prompt, and an
#: assistant turn as its text and ``<|endoftext|>`` (marked for assistant-token masks).
#: ``add_generation_prompt`` adds nothing: the prompt is where the answer begins.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message.role == 'user' -%}"
    "{%- for part in message.content if part.type == 'text' -%}"
    "{%- set src = part.source_language | default('en') -%}"
    "{%- set tgt = part.target_language | default(src) -%}"
    "{%- set pnc = part.punctuation | default(true) -%}"
    "{{- '<|startofcontext|><|startoftranscript|><|emo:undefined|>' -}}"
    "{{- '<|' + src + '|><|' + tgt + '|>' -}}"
    "{{- '<|pnc|>' if pnc else '<|nopnc|>' -}}"
    "{{- '<|noitn|><|notimestamp|><|nodiarize|>' -}}"
    "{%- endfor -%}"
    "{%- elif message.role == 'assistant' -%}"
    "{%- set reply = namespace(text='') -%}"
    "{%- if message.content is string -%}"
    "{%- set reply.text = message.content -%}"
    "{%- else -%}"
    "{%- for part in message.content if part.type == 'text' and part.text is defined -%}"
    "{%- set reply.text = reply.text + part.text -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{% generation %}{{- reply.text + '<|endoftext|>' -}}{% endgeneration %}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

#: Architectures :func:`make_tiny_canary` can build: the tiny test model, and
#: ``nvidia/canary-1b-v2``'s (transformers' ``CanaryConfig`` defaults). ``encoder`` updates
#: the tiny ``ParakeetEncoderConfig``, ``decoder`` the tiny ``CanaryDecoderConfig``;
#: ``vocab_size`` None is the tiny tokenizer's size, else the vocabulary is padded with
#: unused tokens up to it.
CANARY_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"vocab_size": None, "encoder": {}, "decoder": {}},
    "1b-v2": {
        "vocab_size": 16384,
        "encoder": {
            "hidden_size": 1024,
            "num_hidden_layers": 32,
            "num_attention_heads": 8,
            "intermediate_size": 4096,
            "subsampling_conv_channels": 256,
            "max_position_embeddings": 5000,
            "initializer_range": 0.02,
        },
        "decoder": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 8,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "max_position_embeddings": 1024,
            "initializer_range": 0.02,
        },
    },
}
NUM_MEL_BINS = 128


@cache
def _trained_bpe() -> str:
    """The tokenizer (JSON) with :data:`CONTROL_TOKENS` and the language tokens first (ids
    0, 1, ...), then the BPE pieces; trained offline, deterministic."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    from asrtune.models.tiny import sample_corpus

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    corpus = sample_corpus()
    alphabet = sorted({chr(c) for c in range(33, 127)} | set("".join(corpus)) | {"▁"})
    special = [*CONTROL_TOKENS, *(f"<|{code}|>" for code in LANGUAGES)]
    trainer = trainers.BpeTrainer(
        vocab_size=len(special) + TEXT_VOCAB_SIZE,
        special_tokens=special,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok.to_str()


def tiny_canary_tokenizer(vocab_size: int | None = None):
    """A ``TokenizersBackend`` laid out like canary-1b-v2's (see the module docstring),
    padded with unused special tokens up to ``vocab_size`` ids when given. ``<unk>``,
    ``<pad>`` and ``<|endoftext|>`` (EOS) and ``<|startoftranscript|>`` (BOS) are named;
    every control and language token is special (``decode(skip_special_tokens=True)``
    drops the prompt)."""
    from tokenizers import Tokenizer
    from transformers import TokenizersBackend

    tok = Tokenizer.from_str(_trained_bpe())
    if vocab_size is not None:
        filler = vocab_size - tok.get_vocab_size()
        if filler < 0:
            raise ValueError(f"vocab_size={vocab_size} is under the tiny vocabulary's size")
        tok.add_special_tokens([f"<unused{i}>" for i in range(filler)])
    tokenizer = TokenizersBackend(
        tokenizer_object=tok,
        unk_token=UNK,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=SOT,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
    for i, token in enumerate(CONTROL_TOKENS):
        if tokenizer.convert_tokens_to_ids(token) != i:
            raise RuntimeError(f"tiny Canary tokenizer: {token} is not at id {i}")
    return tokenizer


def tiny_canary_config(size: str = "tiny", tokenizer: Any = None):
    """``CanaryConfig`` of ``size`` (:data:`CANARY_SIZES`); special token ids are those of
    ``tokenizer`` (default: the tiny one, padded to the size's vocabulary)."""
    from transformers import CanaryConfig

    dims = CANARY_SIZES[size]
    tokenizer = tokenizer or tiny_canary_tokenizer(dims["vocab_size"])
    ids = tokenizer.convert_tokens_to_ids
    encoder = {
        "model_type": "parakeet_encoder",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "conv_kernel_size": 9,
        "subsampling_factor": 8,
        "subsampling_conv_channels": 8,
        "num_mel_bins": NUM_MEL_BINS,
        "scale_input": False,
        "dropout": 0.0,
        "dropout_positions": 0.0,
        "layerdrop": 0.0,
        "activation_dropout": 0.0,
        "attention_dropout": 0.0,
        "initializer_range": 0.1,
        **dims["encoder"],
    }
    decoder = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "head_dim": 8,
        "max_position_embeddings": 256,
        # 5x the usual init, as the other tiny models: a tied 32-wide output layer with
        # 0.02 barely moves the logits in a few LoRA steps
        "initializer_range": 0.1,
        "pad_token_id": ids(PAD),
        "bos_token_id": ids(SOT),
        "eos_token_id": ids(EOS),
        **dims["decoder"],
    }
    return CanaryConfig(
        encoder_config=encoder,
        decoder_config=decoder,
        vocab_size=len(tokenizer),
        pad_token_id=ids(PAD),
        bos_token_id=ids(SOT),
        eos_token_id=ids(EOS),
        decoder_start_token_id=ids(SOC),
        initializer_range=encoder["initializer_range"],
        tie_word_embeddings=True,
    )


def make_tiny_canary(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Write a random Canary checkpoint of ``size`` (:data:`CANARY_SIZES`) + processor to
    ``out_dir``; returns the path.

    Files: ``config.json``, ``generation_config.json`` (greedy, ends at ``<|endoftext|>``),
    ``model.safetensors`` (float32), ``tokenizer.json`` / ``tokenizer_config.json``,
    ``chat_template.jinja`` and ``processor_config.json``. Weights depend only on ``seed``;
    the caller's torch RNG state is left untouched. Offline.
    """
    from transformers import (
        CanaryForConditionalGeneration,
        CanaryProcessor,
        GenerationConfig,
        ParakeetFeatureExtractor,
    )

    if size not in CANARY_SIZES:
        raise ValueError(f"canary sizes: {', '.join(CANARY_SIZES)}, not {size!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_canary_tokenizer(CANARY_SIZES[size]["vocab_size"])
    extractor = ParakeetFeatureExtractor(feature_size=NUM_MEL_BINS)
    processor = CanaryProcessor(
        feature_extractor=extractor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(out)
    config = tiny_canary_config(size, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CanaryForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        do_sample=False,
        max_new_tokens=512,
    )
    model.save_pretrained(out)
    return out
