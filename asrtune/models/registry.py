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
        capabilities=Capabilities(
            decoding="generative",
            timestamps=True,
            translate=True,
            hotwords=True,
            prompt_training=True,
        ),
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

QWEN3_ASR = register(
    Family(
        name="qwen3_asr",
        adapter="asrtune.models.qwen3_asr",
        label="Qwen3-ASR",
        # transcription only (no translation, no timestamps); packing not measured, so off;
        # hotwords as context in the system prompt (the processor's ``prompt``)
        capabilities=Capabilities(decoding="generative", packing=False, hotwords=True),
        recipe="asrtune.publish.families:QWEN3_ASR_RECIPE",
        tiny_builder="asrtune.models.tiny_qwen3_asr:make_tiny_qwen3_asr",
        tiny_sizes=("tiny", "0.6b", "1.7b"),
        # the transformers-format checkpoints (the ids without -hf hold the original format)
        sizes={
            "0.6B": "Qwen/Qwen3-ASR-0.6B-hf",
            "1.7B": "Qwen/Qwen3-ASR-1.7B-hf",
        },
        default_size="1.7B",
        # config.json's model_type, and the Hub ids
        model_types=("qwen3_asr", "qwen3-asr"),
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
        tiny_sizes=("tiny", "0.6b", "1.1b"),
        sizes={
            "0.6B": "nvidia/parakeet-ctc-0.6b",
            "1.1B": "nvidia/parakeet-ctc-1.1b",
        },
        default_size="0.6B",
        # config.json's model_type, and the Hub ids
        model_types=("parakeet_ctc", "parakeet-ctc"),
    )
)

PARAKEET_TDT = register(
    Family(
        name="parakeet_tdt",
        adapter="asrtune.models.parakeet_tdt",
        label="Parakeet TDT",
        # a token-and-duration transducer, greedy decoding; packing not measured, so off
        capabilities=Capabilities(
            decoding="transducer", timestamps=False, translate=False, packing=False
        ),
        recipe="asrtune.publish.families:PARAKEET_TDT_RECIPE",
        tiny_builder="asrtune.models.tiny_parakeet:make_tiny_parakeet_tdt",
        tiny_sizes=("tiny", "0.6b-v3"),
        # only v3 is on the Hub in transformers' format (-0.6b-v2 and -1.1b: NeMo files)
        sizes={"0.6B v3 (25 languages)": "nvidia/parakeet-tdt-0.6b-v3"},
        default_size="0.6B v3 (25 languages)",
        # config.json's model_type, and the Hub ids
        model_types=("parakeet_tdt", "parakeet-tdt"),
    )
)
