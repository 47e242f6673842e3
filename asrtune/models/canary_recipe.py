"""How published code (model card, demo app) loads and runs a Canary model with plain
transformers: :data:`CANARY_RECIPE`, named by the family's registration."""

from __future__ import annotations

from asrtune.models.family import FamilyRecipe, UsageContext
from asrtune.models.recipes import preamble, py_literal


def _usage(ctx: UsageContext) -> str:
    return (
        preamble("CanaryForConditionalGeneration", "AutoProcessor", ctx)
        + f"language = {py_literal(ctx.language or 'en')}  # the language spoken\n"
        + "# target_language='en' translates to English; punctuation=False: lower case, no marks\n"
        + "inputs = processor.apply_transcription_request(audio=audio, source_language=language)\n"
        + "inputs = inputs.to(model.device, model.dtype)\n"
        + "ids = model.generate(**inputs, max_new_tokens=500)\n"
        + 'new_tokens = ids[:, inputs["decoder_input_ids"].shape[1] :]\n'
        + "print(processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip())\n"
    )


_APP_DECODE = """\
    inputs = processor.apply_transcription_request(audio=samples, source_language=language or "en")
    inputs = inputs.to(model.device, model.dtype)
    # about 5x normal speech; stops a looping output early
    max_new_tokens = int(32 + 25 * len(samples) / SAMPLE_RATE)
    ids = model.generate(**inputs, max_new_tokens=max_new_tokens)
    new_tokens = ids[:, inputs["decoder_input_ids"].shape[1] :]
    return processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()
"""

CANARY_RECIPE = FamilyRecipe(
    family="canary",
    model_class="CanaryForConditionalGeneration",
    processor_class="AutoProcessor",
    usage=_usage,
    app_decode=_APP_DECODE,
    licence="cc-by-4.0",
    licence_ids=("nvidia/canary",),
    card_text="The base model is NVIDIA's, released under the Creative Commons Attribution "
    "4.0 licence (CC-BY-4.0): when you use or share this model, credit NVIDIA's base model "
    "(linked above) and say that it was fine-tuned.",
)
