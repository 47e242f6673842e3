"""Tiny random Parakeet CTC and TDT checkpoints that load with ``from_pretrained`` and need no
network.

:func:`make_tiny_parakeet_ctc` writes a folder that ``ParakeetForCTC`` and
``ParakeetProcessor`` (``AutoProcessor``) load like ``nvidia/parakeet-ctc-0.6b``, with

* a ``ParakeetTokenizer``: a byte-pair vocabulary of :data:`TEXT_VOCAB_SIZE` tokens trained
  here, offline, with the ``tokenizers`` library on the sample sentences of
  :mod:`asrtune.models.tiny` (SentencePiece-style ``▁`` word starts, every printable ASCII
  character in the alphabet so any English text encodes; ``<unk>`` is id 0), followed by
  ``<pad>``, the CTC blank, at id ``vocab_size - 1``, as in the real checkpoints (whose
  blank is their pad token, id 1024 of 1025);
* the real ``ParakeetFeatureExtractor`` (80 log-mel bins, 10-ms hop, per-utterance
  normalisation);
* a model of ~0.1 M parameters: a conformer encoder (hidden 32, 2 layers, 4 heads,
  feed-forward 64) whose subsampling is 2x instead of 8x, so that the sample sentences'
  tokens fit the frames of a 1-2-s test clip (CTC needs at least one frame per token), and a
  1x1-convolution CTC head. Dropout and layer drop are off, so a few training steps lower
  the loss reliably.

:func:`make_tiny_parakeet_tdt` writes a folder that ``ParakeetForTDT`` and ``ParakeetProcessor``
load like ``nvidia/parakeet-tdt-0.6b-v3``, with the same byte-pair vocabulary but laid out as
in the real TDT checkpoints: ``<unk>`` (id 0) and ``<pad>`` (id 1; the real one's is id 2)
inside the trained vocabulary, then ``<blank>``, the transducer's blank, as the last id (the
real one: 8192 of 8193); the 128-bin feature extractor of v3; a conformer encoder with the
real 8x subsampling (hidden 32, 2 layers), a one-layer LSTM prediction network (hidden 32)
and a joint network over the tokens and the durations 0-4 (67 k parameters). Its
generation config starts decoding from the blank and keeps the duration logits out of the
token choice, as the converted checkpoints' do. ``size="0.6b-v3"`` builds the real
architecture (:data:`TDT_SIZES`) with random weights, for benchmarks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = [
    "BLANK_TOKEN",
    "CTC_SIZES",
    "PAD_TOKEN",
    "SUBSAMPLING_FACTOR",
    "TDT_SIZES",
    "TEXT_VOCAB_SIZE",
    "make_tiny_parakeet_ctc",
    "make_tiny_parakeet_tdt",
    "tiny_parakeet_ctc_config",
    "tiny_parakeet_tdt_config",
    "tiny_parakeet_tdt_tokenizer",
    "tiny_parakeet_tokenizer",
]

#: Text tokens (``<unk>``, characters and merges) before the blank.
TEXT_VOCAB_SIZE = 256
#: The CTC blank, which is also the pad token (as in nvidia/parakeet-ctc-*).
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
#: The transducer's blank of the TDT tokenizer (the processor's default ``blank_token``).
BLANK_TOKEN = "<blank>"
#: Encoder frames per 10-ms feature frame: 2x (the real models: 8x, 80 ms per frame).
SUBSAMPLING_FACTOR = 2
NUM_MEL_BINS = 80

#: Architectures :func:`make_tiny_parakeet_tdt` can build: the tiny test model, and the
#: dimensions of ``nvidia/parakeet-tdt-0.6b-v3`` (its config.json: a 24-layer FastConformer
#: of width 1024 on 128 mel bins, a 2-layer LSTM prediction network of width 640, 8192
#: tokens + the blank, durations 0-4), for benchmarks. ``text_tokens`` is the size of the
#: vocabulary before the blank (the tiny BPE vocabulary, padded with unused special tokens
#: up to the real size).
TDT_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "text_tokens": TEXT_VOCAB_SIZE,
        "num_mel_bins": 128,
        "decoder_hidden_size": 32,
        "num_decoder_layers": 1,
        "encoder": {"subsampling_factor": 8},
    },
    "0.6b-v3": {
        "text_tokens": 8192,
        "num_mel_bins": 128,
        "decoder_hidden_size": 640,
        "num_decoder_layers": 2,
        "encoder": {
            "hidden_size": 1024,
            "num_hidden_layers": 24,
            "num_attention_heads": 8,
            "intermediate_size": 4096,
            "conv_kernel_size": 9,
            "subsampling_factor": 8,
            "subsampling_conv_channels": 256,
            "max_position_embeddings": 5000,
            "scale_input": False,
            "attention_bias": False,
            "convolution_bias": False,
            "dropout": 0.1,
            "attention_dropout": 0.1,
            "activation_dropout": 0.1,
            "layerdrop": 0.1,
            "initializer_range": 0.02,
        },
    },
}
#: Architectures :func:`make_tiny_parakeet_ctc` can build: the tiny test model, and the
#: dimensions of ``nvidia/parakeet-ctc-0.6b`` and ``-1.1b`` (FastConformer XL and XXL: 24 and
#: 42 layers of width 1024, 8 heads, feed-forward 4096, 8x subsampling of 80 mel bins, as
#: transformers' ``ParakeetEncoderConfig`` defaults describe them; 1024 tokens + the blank),
#: for benchmarks. ``text_tokens`` as in :data:`TDT_SIZES`.
CTC_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"text_tokens": TEXT_VOCAB_SIZE, "encoder": {}},
    **{
        size: {
            "text_tokens": 1024,
            "encoder": {
                "hidden_size": 1024,
                "num_hidden_layers": layers,
                "num_attention_heads": 8,
                "intermediate_size": 4096,
                "conv_kernel_size": 9,
                "subsampling_factor": 8,
                "subsampling_conv_channels": 256,
                "dropout": 0.1,
                "attention_dropout": 0.1,
                "activation_dropout": 0.1,
                "layerdrop": 0.1,
                "initializer_range": 0.02,
            },
        }
        for size, layers in (("0.6b", 24), ("1.1b", 42))
    },
}
#: The durations (in encoder frames) the TDT joint network predicts, as in the real models.
TDT_DURATIONS = (0, 1, 2, 3, 4)


def _bpe(special_tokens: list[str]):
    """A ``tokenizers.Tokenizer`` with :data:`TEXT_VOCAB_SIZE` BPE tokens, ``special_tokens``
    first (ids 0, 1, ...); trained offline, deterministic."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    from asrtune.models.tiny import sample_corpus

    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    alphabet = [chr(c) for c in range(33, 127)] + ["▁"]
    trainer = trainers.BpeTrainer(
        vocab_size=TEXT_VOCAB_SIZE,
        special_tokens=special_tokens,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    tok.train_from_iterator(sample_corpus(), trainer=trainer)
    if tok.get_vocab_size() > TEXT_VOCAB_SIZE:  # pragma: no cover - the trainer's bound
        raise RuntimeError("the tiny Parakeet vocabulary came out too large")
    return tok


def tiny_parakeet_tokenizer(text_tokens: int = TEXT_VOCAB_SIZE):
    """A ``ParakeetTokenizer`` laid out like a CTC checkpoint's: the BPE tokens (``<unk>``
    0), unused special tokens up to ``text_tokens`` ids, then the blank (``<pad>``, id
    ``text_tokens``, the last); built offline, deterministic."""
    from transformers.models.parakeet import ParakeetTokenizer

    tok = _bpe([UNK_TOKEN])
    tok.add_special_tokens([*_filler(tok, text_tokens), PAD_TOKEN])
    return ParakeetTokenizer(tokenizer_object=tok, unk_token=UNK_TOKEN, pad_token=PAD_TOKEN)


def _filler(tok: Any, text_tokens: int) -> list[str]:
    """Unused special tokens that take ``tok``'s vocabulary up to ``text_tokens``."""
    filler = text_tokens - tok.get_vocab_size()
    if filler < 0:
        raise ValueError(f"text_tokens={text_tokens} is under the BPE vocabulary's size")
    return [f"<unused{i}>" for i in range(filler)]


def tiny_parakeet_tdt_tokenizer(text_tokens: int = TEXT_VOCAB_SIZE):
    """A ``ParakeetTokenizer`` laid out like a TDT checkpoint's: ``<unk>`` (0) and ``<pad>``
    (1) among the BPE tokens, unused special tokens up to ``text_tokens`` ids, then
    ``<blank>`` (id ``text_tokens``, the last); built offline, deterministic."""
    from transformers.models.parakeet import ParakeetTokenizer

    tok = _bpe([UNK_TOKEN, PAD_TOKEN])
    tok.add_special_tokens([*_filler(tok, text_tokens), BLANK_TOKEN])
    return ParakeetTokenizer(tokenizer_object=tok, unk_token=UNK_TOKEN, pad_token=PAD_TOKEN)


def _tiny_encoder_config(**changes: Any) -> dict[str, Any]:
    """The tiny conformer encoder (``ParakeetEncoderConfig`` keys), with ``changes``."""
    return {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "conv_kernel_size": 9,
        "subsampling_factor": SUBSAMPLING_FACTOR,
        "subsampling_conv_channels": 8,
        "num_mel_bins": NUM_MEL_BINS,
        "dropout": 0.0,
        "dropout_positions": 0.0,
        "layerdrop": 0.0,
        "activation_dropout": 0.0,
        "attention_dropout": 0.0,
        "initializer_range": 0.1,
        **changes,
    }


def tiny_parakeet_ctc_config(vocab_size: int, size: str = "tiny"):
    """``ParakeetCTCConfig`` of ``size`` (see :data:`CTC_SIZES`); the blank (pad) is
    ``vocab_size - 1``."""
    from transformers import ParakeetCTCConfig

    encoder = _tiny_encoder_config(**CTC_SIZES[size]["encoder"])
    return ParakeetCTCConfig(
        vocab_size=vocab_size, pad_token_id=vocab_size - 1, encoder_config=encoder
    )


def tiny_parakeet_tdt_config(pad_token_id: int, size: str = "tiny"):
    """``ParakeetTDTConfig`` of ``size`` (see :data:`TDT_SIZES`): ``text_tokens`` tokens +
    the blank (the last id), ``pad_token_id`` among the text tokens."""
    from transformers import ParakeetTDTConfig

    dims = TDT_SIZES[size]
    blank = dims["text_tokens"]
    encoder = _tiny_encoder_config(num_mel_bins=dims["num_mel_bins"], **dims["encoder"])
    return ParakeetTDTConfig(
        vocab_size=blank + 1,
        blank_token_id=blank,
        pad_token_id=pad_token_id,
        decoder_hidden_size=dims["decoder_hidden_size"],
        num_decoder_layers=dims["num_decoder_layers"],
        durations=list(TDT_DURATIONS),
        hidden_act="relu",
        max_symbols_per_step=10,
        encoder_config=encoder,
    )


def _write_checkpoint(
    out_dir: str | Path, tokenizer: Any, decoder_type: str, config: Any, seed: int
) -> tuple[Path, Any]:
    """Write the processor (``tokenizer`` + the feature extractor for ``config``'s mel bins)
    to ``out_dir``, and return it with the random model of ``config`` (seeded, the caller's
    RNG untouched), which the caller saves."""
    from transformers import (
        ParakeetFeatureExtractor,
        ParakeetForCTC,
        ParakeetForTDT,
        ParakeetProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extractor = ParakeetFeatureExtractor(feature_size=config.encoder_config.num_mel_bins)
    ParakeetProcessor(
        feature_extractor=extractor, tokenizer=tokenizer, decoder_type=decoder_type
    ).save_pretrained(out)
    model_class = ParakeetForTDT if decoder_type == "tdt" else ParakeetForCTC
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    return out, model


def make_tiny_parakeet_ctc(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Write a random ``ParakeetForCTC`` of ``size`` (:data:`CTC_SIZES`) + processor to
    ``out_dir``; returns the path.

    Files: ``config.json``, ``model.safetensors`` (float32), ``tokenizer.json`` /
    ``tokenizer_config.json`` and ``processor_config.json``. Weights depend only on
    ``seed``; the caller's torch RNG state is left untouched. Offline.
    """
    if size not in CTC_SIZES:
        raise ValueError(f"parakeet_ctc tiny sizes: {', '.join(CTC_SIZES)}, not {size!r}")
    tokenizer = tiny_parakeet_tokenizer(CTC_SIZES[size]["text_tokens"])
    vocab_size = len(tokenizer)
    if tokenizer.pad_token_id != vocab_size - 1:
        raise RuntimeError("the blank must be the last token")
    config = tiny_parakeet_ctc_config(vocab_size, size)
    out, model = _write_checkpoint(out_dir, tokenizer, "ctc", config, seed)
    model.save_pretrained(out)
    return out


def make_tiny_parakeet_tdt(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Write a random ``ParakeetForTDT`` of ``size`` (:data:`TDT_SIZES`) + processor to
    ``out_dir``; returns the path.

    Files: ``config.json``, ``generation_config.json`` (decoding starts from the blank; the
    duration logits are suppressed from the token choice), ``model.safetensors`` (float32),
    ``tokenizer.json`` / ``tokenizer_config.json`` and ``processor_config.json``
    (``decoder_type`` "tdt"). Weights depend only on ``seed``; the caller's torch RNG state
    is left untouched. Offline.
    """
    if size not in TDT_SIZES:
        raise ValueError(f"parakeet_tdt tiny sizes: {', '.join(TDT_SIZES)}, not {size!r}")
    tokenizer = tiny_parakeet_tdt_tokenizer(TDT_SIZES[size]["text_tokens"])
    config = tiny_parakeet_tdt_config(tokenizer.pad_token_id, size)
    blank = tokenizer.convert_tokens_to_ids(BLANK_TOKEN)
    if not blank == config.blank_token_id == len(tokenizer) - 1:
        raise RuntimeError("the blank must be the last token")
    out, model = _write_checkpoint(out_dir, tokenizer, "tdt", config, seed)
    # as transformers' NeMo conversion writes it
    model.generation_config.decoder_start_token_id = config.blank_token_id
    model.generation_config.suppress_tokens = list(
        range(config.vocab_size, config.vocab_size + len(config.durations))
    )
    model.save_pretrained(out)
    return out
