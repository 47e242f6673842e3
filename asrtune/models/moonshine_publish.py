"""How published code (model card, demo app) runs a Moonshine model with plain
transformers: the :class:`~asrtune.models.family.FamilyRecipe` of the ``moonshine``
registration, and the checkpoints' licence.

The usage code decodes the way :func:`asrtune.models.moonshine.generate` does: the whole
clip in one pass (the card's reader transcribes clips of up to 30 s), greedy, at most
32 + 25 new tokens per second within the decoder's positions, so it prints the text that
``asrtune transcribe`` gives.
"""

from __future__ import annotations

from asrtune.models.family import FamilyRecipe, UsageContext
from asrtune.models.recipes import preamble

#: The licence of Useful Sensors' Moonshine checkpoints (their model cards say MIT).
LICENSE = "mit"

_DECODE = """\
inputs = processor(audio, sampling_rate=16000, return_tensors="pt")
inputs = inputs.to(model.device, model.dtype)
# about 5x normal speech; stops a looping output early
max_new_tokens = min(int(32 + 25 * len(audio) / 16000), model.config.max_position_embeddings - 1)
ids = model.generate(**inputs, max_new_tokens=max_new_tokens)
print(processor.batch_decode(ids, skip_special_tokens=True)[0].strip())
"""


def _usage(ctx: UsageContext) -> str:
    return preamble("MoonshineForConditionalGeneration", "AutoProcessor", ctx) + _DECODE


_APP_DECODE = """\
    inputs = processor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    inputs = inputs.to(model.device, model.dtype)
    # about 5x normal speech, within the decoder's positions; stops a looping output early
    positions = model.config.max_position_embeddings - 1
    max_new_tokens = min(int(32 + 25 * len(samples) / SAMPLE_RATE), positions)
    ids = model.generate(**inputs, max_new_tokens=max_new_tokens)
    return processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
"""

MOONSHINE_RECIPE = FamilyRecipe(
    family="moonshine",
    model_class="MoonshineForConditionalGeneration",
    processor_class="AutoProcessor",
    usage=_usage,
    app_decode=_APP_DECODE,
    licence="mit",
    licence_ids=("usefulsensors/moonshine",),
)
