"""The registered model families: one :func:`~asrtune.models.family.register` call each.

Each registration names the family's adapter module, declares its capabilities and holds
what the rest of asrtune needs to know about it (UI sizes, make-tiny builder, publish
recipe); see :class:`asrtune.models.family.Family`. The first registered family is the
default (of ``make-tiny`` and the UI).
"""

from __future__ import annotations

from asrtune.models.family import Capabilities, Family, register

WHISPER = register(
    Family(
        name="whisper",
        adapter="asrtune.models.whisper",
        label="Whisper",
        capabilities=Capabilities(decoding="generative", timestamps=True, translate=True),
        recipe="asrtune.publish.families:WHISPER_RECIPE",
        tiny_builder="asrtune.models.tiny:make_tiny_whisper",
        tiny_sizes=("tiny", "small", "large-v3"),
        # OpenAI's checkpoints
        sizes={
            size: f"openai/whisper-{size}"
            for size in (
                "tiny",
                "tiny.en",
                "base",
                "base.en",
                "small",
                "small.en",
                "medium",
                "medium.en",
                "large-v3",
            )
        },
        default_size="small",
    )
)

VOXTRAL = register(
    Family(
        name="voxtral",
        adapter="asrtune.models.voxtral",
        label="Voxtral",
        # transcription mode only; QLoRA on a 4/8-bit language model
        capabilities=Capabilities(decoding="generative", quantized_base=True),
        recipe="asrtune.publish.families:VOXTRAL_RECIPE",
        tiny_builder="asrtune.models.tiny_voxtral:make_tiny_voxtral",  # needs mistral-common
        tiny_sizes=("tiny", "mini-3b"),
        sizes={
            "mini (3B)": "mistralai/Voxtral-Mini-3B-2507",
            "small (24B)": "mistralai/Voxtral-Small-24B-2507",
        },
        default_size="mini (3B)",
    )
)

PARAKEET_CTC = register(
    Family(
        name="parakeet_ctc",
        adapter="asrtune.models.parakeet_ctc",
        label="Parakeet CTC",
        # frame-level outputs, greedy decoding; packing not measured, so off
        capabilities=Capabilities(decoding="ctc", timestamps=False, translate=False, packing=False),
        recipe="asrtune.publish.families:PARAKEET_CTC_RECIPE",
        tiny_builder="asrtune.models.tiny_parakeet:make_tiny_parakeet_ctc",
        sizes={
            "0.6B": "nvidia/parakeet-ctc-0.6b",
            "1.1B": "nvidia/parakeet-ctc-1.1b",
        },
        default_size="0.6B",
        # config.json's model_type, and the Hub ids
        model_types=("parakeet_ctc", "parakeet-ctc"),
    )
)
