"""data2vec-audio: raw 16-kHz audio → a convolutional feature encoder → transformer layers → a CTC
head (``Data2VecAudioForCTC``): facebook/data2vec-audio-large.

Same functions as ``asrtune/models/whisper.py`` (the contract is
:class:`asrtune.models.family.FamilyAdapter`), shared by the self-supervised encoders in
``asrtune/models/ssl_ctc.py`` (loading with the feature encoder frozen, training items,
greedy CTC, ``use_vocabulary`` for ``--new_vocabulary``); this module states the model and
processor classes, the LoRA targets and the learning rates.
"""

from __future__ import annotations

from typing import Any

from asrtune.models import ssl_ctc
from asrtune.models.ssl_ctc import (  # noqa: F401 (the contract's, shared)
    KIND,
    MAX_AUDIO_SECONDS,
    allow_empty_transcripts,
    collate,
    encode_labels,
    generate,
    generate_boosted,
    limits,
    load_processor,
    pack_item,
    packer,
    save,
    sole_language,
    summed_loss,
    use_vocabulary,
    window_item,
)

FAMILY = "data2vec_audio"
MODEL_CLASS = "Data2VecAudioForCTC"
PROCESSOR_CLASS = "Wav2Vec2Processor"  # feature extractor + Wav2Vec2CTCTokenizer
LORA_TASK_TYPE = None  # a plain LoRA wrapper: no generation head to wrap
# LoRA's learning rate unless told otherwise: the usual one for LoRA on a 0.1-1B encoder
# (not measured: no pretrained data2vec-audio offline).
LORA_LEARNING_RATE = 1e-4
# Not used by the loss: asrtune's trainer takes the model's own CTC loss (no label shift).
LOSS_SHIFTS_LABELS = False
GPU_INFERENCE_DTYPE = "bfloat16"  # transformers' CTC loss runs in float32 whatever the dtype
#: Padding changes its outputs: the same 9 clips of different lengths trained 1 × 4 and 1 × 2
#: with accumulation gave losses 4.03 and 3.75 (tiny model; equal on clips of one length).
PADDING_CHANGES_OUTPUTS = True
TRAINING_MIX: dict[str, Any] = {}  # plain utterances: no packing, no timestamps
# The encoder's attention and feed-forward projections in every layer (a regex).
LORA_PATTERN = ssl_ctc.TRANSFORMER_LORA_PATTERN

load = ssl_ctc.loader(MODEL_CLASS, FAMILY)
# assigned, not imported: default_lora_targets' parameter of that name would shadow it
freeze_encoder = ssl_ctc.freeze_encoder


def default_lora_targets(freeze_encoder: bool) -> list[str] | str:
    """The attention and feed-forward projections of every encoder layer (a regex); with
    a frozen encoder, the CTC head (``lm_head``)."""
    return ssl_ctc.lora_targets(LORA_PATTERN, freeze_encoder)
