"""A family of the encoder-decoder kind that declares only what a new family must: its
name, constants, loader and decoder prompt; everything else is the kind's
(``asrtune/models/kinds/encoder_decoder.py``). tests/test_kinds.py registers it over a tiny
English-only Whisper checkpoint, read through ``AutoModelForSpeechSeq2Seq`` and
``AutoProcessor`` as any new encoder-decoder family would be."""

from __future__ import annotations

from typing import Any

from asrtune.models import LoadedModel, require_transcribe
from asrtune.models.kinds.common import loader, processor_loader
from asrtune.models.kinds.encoder_decoder import (  # noqa: F401 (the kind's shared work)
    KIND,
    LORA_TASK_TYPE,
    LOSS_SHIFTS_LABELS,
    MODEL_CLASS,
    PROCESSOR_CLASS,
    allow_empty_transcripts,
    collate,
    default_lora_targets,
    encode_labels,
    freeze_encoder,
    generate,
    limits,
    pack_item,
    packer,
    save,
    sole_language,
    summed_loss,
    window_item,
)

FAMILY = "plain_encoder_decoder"
LORA_LEARNING_RATE = 1e-4
GPU_INFERENCE_DTYPE = "float16"
TRAINING_MIX: dict[str, Any] = {}
load_processor = processor_loader(PROCESSOR_CLASS)
load = loader(MODEL_CLASS, FAMILY, load_processor)


def decoder_prompt(loaded: LoadedModel, language: str | None, task: str) -> list[int]:
    """The tokens between the start token and the text: ``<|notimestamps|>``."""
    require_transcribe(task, "plain encoder-decoder")
    return [loaded.processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>")]
