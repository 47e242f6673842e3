"""Tiny random Parakeet CTC checkpoints that load with ``from_pretrained`` and need no network.

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
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = [
    "PAD_TOKEN",
    "SUBSAMPLING_FACTOR",
    "TEXT_VOCAB_SIZE",
    "make_tiny_parakeet_ctc",
    "tiny_parakeet_ctc_config",
    "tiny_parakeet_tokenizer",
]

#: Text tokens (``<unk>``, characters and merges) before the blank.
TEXT_VOCAB_SIZE = 256
#: The CTC blank, which is also the pad token (as in nvidia/parakeet-ctc-*).
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
#: Encoder frames per 10-ms feature frame: 2x (the real models: 8x, 80 ms per frame).
SUBSAMPLING_FACTOR = 2
NUM_MEL_BINS = 80


def _training_text() -> list[str]:
    from asrtune.models.tiny import SAMPLE_SENTENCES

    return [sentence for sentences in SAMPLE_SENTENCES.values() for sentence in sentences]


def tiny_parakeet_tokenizer():
    """A ``ParakeetTokenizer`` with :data:`TEXT_VOCAB_SIZE` BPE tokens + the blank
    (``<pad>``, the last id); built offline, deterministic."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.parakeet import ParakeetTokenizer

    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    alphabet = [chr(c) for c in range(33, 127)] + ["▁"]
    trainer = trainers.BpeTrainer(
        vocab_size=TEXT_VOCAB_SIZE,
        special_tokens=[UNK_TOKEN],
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    tok.train_from_iterator(_training_text(), trainer=trainer)
    if tok.get_vocab_size() > TEXT_VOCAB_SIZE:  # pragma: no cover - the trainer's bound
        raise RuntimeError("the tiny Parakeet vocabulary came out too large")
    # the blank goes right after the text tokens, whatever their count
    tok.add_special_tokens([PAD_TOKEN])
    return ParakeetTokenizer(tokenizer_object=tok, unk_token=UNK_TOKEN, pad_token=PAD_TOKEN)


def tiny_parakeet_ctc_config(vocab_size: int):
    """``ParakeetCTCConfig`` of the tiny model; the blank (pad) is ``vocab_size - 1``."""
    from transformers import ParakeetCTCConfig

    encoder = {
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
    }
    return ParakeetCTCConfig(
        vocab_size=vocab_size, pad_token_id=vocab_size - 1, encoder_config=encoder
    )


def make_tiny_parakeet_ctc(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Write a tiny random ``ParakeetForCTC`` + processor to ``out_dir``; returns the path.

    Files: ``config.json``, ``model.safetensors`` (float32), ``tokenizer.json`` /
    ``tokenizer_config.json`` and ``processor_config.json``. Weights depend only on
    ``seed``; the caller's torch RNG state is left untouched. Offline.
    """
    from transformers import ParakeetFeatureExtractor, ParakeetForCTC, ParakeetProcessor

    if size != "tiny":
        raise ValueError(f"parakeet_ctc tiny sizes: tiny, not {size!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_parakeet_tokenizer()
    vocab_size = len(tokenizer)
    if tokenizer.pad_token_id != vocab_size - 1:
        raise RuntimeError("the blank must be the last token")
    extractor = ParakeetFeatureExtractor(feature_size=NUM_MEL_BINS)
    ParakeetProcessor(
        feature_extractor=extractor, tokenizer=tokenizer, decoder_type="ctc"
    ).save_pretrained(out)
    config = tiny_parakeet_ctc_config(vocab_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ParakeetForCTC(config)
    model.save_pretrained(out)
    return out
