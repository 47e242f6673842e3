"""Tiny random self-supervised encoders with a CTC head (wav2vec2, w2v-BERT 2.0, HuBERT,
WavLM, data2vec-audio) that load with ``from_pretrained`` and need no network.

Each builder writes a folder that the family's ``*ForCTC`` class and ``AutoProcessor`` load
like a fine-tuned checkpoint, with

* a ``Wav2Vec2CTCTokenizer`` over the characters of :data:`asrtune.models.tiny.SAMPLE_SENTENCES`
  (English, lowercased, no punctuation: :mod:`asrtune.models.ctc_vocabulary`'s rule), which
  ``--new_vocabulary`` replaces with one built from the training text;
* the real feature extractor: ``Wav2Vec2FeatureExtractor`` (raw 16-kHz audio, normalized per
  utterance, attention mask) or, for w2v-BERT, ``SeamlessM4TFeatureExtractor`` (80 log-mel
  bins, 10-ms hop, two frames stacked: 160 values every 20 ms);
* a model of ~0.1 M parameters: hidden 32, 2 layers, 2 heads, feed-forward 64; the wav2vec2
  feature encoder has 3 convolutions of 32 channels whose strides (5, 8, 8) keep the real
  models' 320 samples (20 ms) a frame. Dropout, layer drop and SpecAugment's masks are off,
  so a few training steps lower the loss reliably.

``size`` other than ``"tiny"`` builds a real architecture (:data:`WAV2VEC2_SIZES`,
:data:`W2V_BERT_SIZES`) with random weights and the tiny tokenizer, for benchmarks; its
parameters are counted on the meta device by :func:`parameter_count` (tests pin them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from asrtune.models.ctc_vocabulary import VocabularyOptions, build_vocabulary, make_tokenizer
from asrtune.models.tiny import SAMPLE_SENTENCES

_TINY_ENCODER: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_dropout": 0.0,
    "activation_dropout": 0.0,
    "attention_dropout": 0.0,
    "feat_proj_dropout": 0.0,
    "final_dropout": 0.0,
    "layerdrop": 0.0,
    "mask_time_prob": 0.0,
}
#: The convolutional feature encoder of the tiny wav2vec2-like models: 320 samples a frame.
_TINY_CONV: dict[str, Any] = {
    "conv_dim": (32, 32, 32),
    "conv_stride": (5, 8, 8),
    "conv_kernel": (10, 8, 8),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}
#: XLS-R's and MMS's feature encoder: 7 convolutions of 512 channels, 320 samples a frame.
_REAL_CONV: dict[str, Any] = {
    "conv_dim": (512,) * 7,
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_bias": True,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
}

#: Architectures of the wav2vec2 family: the tiny test model, and the dimensions of
#: facebook/wav2vec2-xls-r-300m (24 layers of width 1024) and facebook/mms-1b (48 layers of
#: width 1280), from their config.json files.
WAV2VEC2_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        **_TINY_ENCODER,
        **_TINY_CONV,
        "feat_extract_norm": "layer",
        "do_stable_layer_norm": True,
    },
    # the tiny model with MMS-style attention adapters (as facebook/mms-1b-all has)
    "tiny-mms": {
        **_TINY_ENCODER,
        **_TINY_CONV,
        "feat_extract_norm": "layer",
        "do_stable_layer_norm": True,
        "adapter_attn_dim": 8,
    },
    "xls-r-300m": {
        **_REAL_CONV,
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
    },
    "mms-1b": {
        **_REAL_CONV,
        "hidden_size": 1280,
        "num_hidden_layers": 48,
        "num_attention_heads": 16,
        "intermediate_size": 5120,
    },
}
#: Architectures of the w2v-BERT family: the tiny test model (conformer convolutions of
#: kernel 3), and facebook/w2v-bert-2.0 (24 conformer layers of width 1024, kernel 31:
#: transformers' defaults, which describe it).
W2V_BERT_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {**_TINY_ENCODER, "conv_depthwise_kernel_size": 3, "conformer_conv_dropout": 0.0},
    "w2v-bert-2.0": {},
}


def tiny_tokenizer(folder: str | Path) -> Any:
    """The ``Wav2Vec2CTCTokenizer`` of the English sample sentences' characters."""
    texts = [text for texts in SAMPLE_SENTENCES.values() for text in texts]
    english = [t for t in texts if t.isascii()] or texts
    return make_tokenizer(build_vocabulary(english, VocabularyOptions()), folder)


def _ctc_options(tokenizer: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer.get_vocab()),
        "pad_token_id": tokenizer.pad_token_id,
        "ctc_loss_reduction": "mean",
        "ctc_zero_infinity": True,
    }


def _write(
    out_dir: str | Path,
    seed: int,
    model_class: str,
    config: Any,
    processor_class: str,
    extractor: Any,
    tokenizer: Any,
) -> Path:
    import transformers

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config)
    model.save_pretrained(out)
    processor = getattr(transformers, processor_class)(
        feature_extractor=extractor, tokenizer=tokenizer
    )
    processor.save_pretrained(out)
    return out


def _wav2vec2_like(config_class: str, model_class: str) -> Callable[..., Path]:
    """A builder of a raw-audio family (``Wav2Vec2FeatureExtractor``, a conv encoder)."""

    def build(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
        import transformers

        tokenizer = tiny_tokenizer(out_dir)
        sizes = WAV2VEC2_SIZES if model_class == "Wav2Vec2ForCTC" else {"tiny": {}}
        # the conv encoder normalised per frame (layer norm), as the large checkpoints
        # (hubert-large-ll60k, wavlm-large) have it: the base ones' group norm spans the
        # padded input, so padding would change every row
        stable = {"feat_extract_norm": "layer", "do_stable_layer_norm": True}
        dims = {**_TINY_ENCODER, **_TINY_CONV, **stable} if model_class != "Wav2Vec2ForCTC" else {}
        config = getattr(transformers, config_class)(
            **dims, **sizes[size], **_ctc_options(tokenizer)
        )
        extractor = transformers.Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=16000,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=True,
        )
        return _write(out_dir, seed, model_class, config, "Wav2Vec2Processor", extractor, tokenizer)

    build.__doc__ = f"Write a random {model_class} checkpoint of ``size`` with its processor."
    return build


make_tiny_wav2vec2 = _wav2vec2_like("Wav2Vec2Config", "Wav2Vec2ForCTC")
make_tiny_hubert = _wav2vec2_like("HubertConfig", "HubertForCTC")
make_tiny_wavlm = _wav2vec2_like("WavLMConfig", "WavLMForCTC")
make_tiny_data2vec_audio = _wav2vec2_like("Data2VecAudioConfig", "Data2VecAudioForCTC")


def make_tiny_wav2vec2_bert(out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Write a random ``Wav2Vec2BertForCTC`` checkpoint of ``size`` with its processor
    (``SeamlessM4TFeatureExtractor`` + the tiny tokenizer)."""
    import transformers

    tokenizer = tiny_tokenizer(out_dir)
    config = transformers.Wav2Vec2BertConfig(**W2V_BERT_SIZES[size], **_ctc_options(tokenizer))
    extractor = transformers.SeamlessM4TFeatureExtractor(
        feature_size=80, num_mel_bins=80, sampling_rate=16000, stride=2, padding_value=0.0
    )
    return _write(
        out_dir, seed, "Wav2Vec2BertForCTC", config, "Wav2Vec2BertProcessor", extractor, tokenizer
    )


def parameter_count(model_class: str, config: Any) -> int:
    """Parameters of ``model_class(config)``, built on the meta device (no memory)."""
    import transformers

    with torch.device("meta"):
        model = getattr(transformers, model_class)(config)
    return sum(p.numel() for p in model.parameters())
