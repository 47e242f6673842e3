"""The registered model families: one :func:`~asrtune.models.family.register` call each.

Each registration names the family's adapter module and its kind, declares its
capabilities and holds what the rest of asrtune needs to know about it (UI sizes, make-tiny
builder, publish recipe, what freezing and LoRA touch); see
:class:`asrtune.models.family.Family`. The first registered family is the default (of
``make-tiny`` and the UI).
"""

from __future__ import annotations

from asrtune.models.family import Capabilities, Family, register

WHISPER = register(
    Family(
        name="whisper",
        adapter="asrtune.models.whisper",
        kind="encoder_decoder",
        label="Whisper",
        trains_when_frozen="the decoder",
        lora_help="the attention and MLP projections (q,k,v,out_proj, fc1,fc2); "
        "the decoder's only with --freeze_encoder",
        capabilities=Capabilities(
            decoding="generative",
            timestamps=True,
            translate=True,
            hotwords=True,
            prompt_training=True,
        ),
        recipe="asrtune.models.recipes:WHISPER_RECIPE",
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
        kind="audio_llm",
        label="Voxtral",
        trains_when_frozen="the language model (audio tower and projector frozen)",
        lora_help="the language model's attention and MLP projections (q,k,v,o, gate,up,down_proj)",
        # transcription mode only; QLoRA on a 4/8-bit language model
        capabilities=Capabilities(decoding="generative", quantized_base=True),
        recipe="asrtune.models.recipes:VOXTRAL_RECIPE",
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
        kind="audio_llm",
        label="Qwen3-ASR",
        trains_when_frozen="the language model (audio encoder and projector frozen)",
        lora_help="the language model's attention and MLP projections (q,k,v,o, gate,up,down_proj)",
        # transcription only (no translation, no timestamps); packing not measured, so off
        capabilities=Capabilities(decoding="generative", packing=False, hotwords=True),
        recipe="asrtune.models.recipes:QWEN3_ASR_RECIPE",
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
        kind="ctc",
        label="Parakeet CTC",
        trains_when_frozen="the CTC head",
        lora_help="the conformer's attention (q,k,v,o_proj) and feed-forward (linear1,2) "
        "projections",
        # frame-level outputs, greedy decoding; packing not measured, so off
        capabilities=Capabilities(decoding="ctc", timestamps=False, translate=False, packing=False),
        recipe="asrtune.models.recipes:PARAKEET_CTC_RECIPE",
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
        kind="transducer",
        label="Parakeet TDT",
        trains_when_frozen="the prediction and joint networks",
        lora_help="the conformer's attention (q,k,v,o_proj) and feed-forward (linear1,2) "
        "projections, and the joint network",
        # a token-and-duration transducer, greedy decoding; packing not measured, so off
        capabilities=Capabilities(
            decoding="transducer", timestamps=False, translate=False, packing=False
        ),
        recipe="asrtune.models.recipes:PARAKEET_TDT_RECIPE",
        tiny_builder="asrtune.models.tiny_parakeet:make_tiny_parakeet_tdt",
        tiny_sizes=("tiny", "0.6b-v3"),
        # only v3 is on the Hub in transformers' format (-0.6b-v2 and -1.1b: NeMo files)
        sizes={"0.6B v3 (25 languages)": "nvidia/parakeet-tdt-0.6b-v3"},
        default_size="0.6B v3 (25 languages)",
        # config.json's model_type, and the Hub ids
        model_types=("parakeet_tdt", "parakeet-tdt"),
    )
)

MOONSHINE = register(
    Family(
        name="moonshine",
        adapter="asrtune.models.moonshine",
        kind="encoder_decoder",
        label="Moonshine",
        trains_when_frozen="the decoder",
        lora_help="the attention and MLP projections (q,k,v,o_proj, fc1,fc2) of encoder "
        "and decoder; the decoder's only with --freeze_encoder",
        # packing off until measured on a quiet CPU: benchmarks/moonshine_packing.py gave
        # packed 3-s clips 1.38x the throughput on a CPU shared by ~13 jobs, too noisy to
        # decide (docs/benchmarks.md); transcription only, no timestamps
        capabilities=Capabilities(decoding="generative", packing=False),
        recipe="asrtune.models.moonshine_publish:MOONSHINE_RECIPE",
        tiny_builder="asrtune.models.tiny_moonshine:make_tiny_moonshine",
        tiny_sizes=("tiny", "moonshine-tiny", "moonshine-base"),
        sizes={
            "tiny (27M)": "UsefulSensors/moonshine-tiny",
            "base (62M)": "UsefulSensors/moonshine-base",
        },
        default_size="base (62M)",
    )
)

CANARY = register(
    Family(
        name="canary",
        adapter="asrtune.models.canary",
        kind="encoder_decoder",
        label="Canary",
        trains_when_frozen="the decoder",
        lora_help="the decoder's self-/cross-attention and MLP and the encoder's attention "
        "and feed-forward; the decoder's only with --freeze_encoder",
        # transcription in 25 languages and translation to English; no timestamps;
        # packing not measured, so off
        capabilities=Capabilities(decoding="generative", translate=True, packing=False),
        recipe="asrtune.models.canary_recipe:CANARY_RECIPE",
        tiny_builder="asrtune.models.tiny_canary:make_tiny_canary",
        tiny_sizes=("tiny", "1b-v2"),
        sizes={"1B v2 (25 languages)": "nvidia/canary-1b-v2"},
        default_size="1B v2 (25 languages)",
    )
)

# Self-supervised encoders with a CTC head (asrtune/models/ssl_ctc.py): frame-level outputs,
# greedy decoding, one utterance per item (no packing), a character vocabulary built from
# the data with --new_vocabulary. Full fine-tuning's learning rates are the published
# recipes' (not measurable offline: no pretrained encoder here; see docs/user-guide.md "A
# language no model speaks"): 3e-4 for XLS-R and its kin (Hugging Face's XLS-R fine-tuning
# recipe), 5e-5 for w2v-BERT 2.0 (its fine-tuning recipe): 15x and 2.5x asrtune's 2e-5.
_SSL_CTC = Capabilities(decoding="ctc", packing=False, new_vocabulary=True, hotwords=True)
# wav2vec2 also trains MMS's per-language adapters (--target_lang)
_WAV2VEC2 = Capabilities(
    decoding="ctc", packing=False, new_vocabulary=True, language_adapters=True, hotwords=True
)
SSL_LEARNING_RATE = 3e-4
_SSL_FROZEN = "the transformer layers and the CTC head (the feature encoder stays frozen)"
_SSL_LORA = "the attention and feed-forward projections of the transformer layers"
W2V_BERT_LEARNING_RATE = 5e-5

# before wav2vec2: its model_type (wav2vec2-bert) holds wav2vec2's
WAV2VEC2_BERT = register(
    Family(
        name="wav2vec2_bert",
        adapter="asrtune.models.wav2vec2_bert",
        kind="ctc",
        label="w2v-BERT 2.0",
        trains_when_frozen=_SSL_FROZEN,
        lora_help=_SSL_LORA,
        capabilities=_SSL_CTC,
        recipe="asrtune.models.ssl_recipes:WAV2VEC2_BERT_RECIPE",
        tiny_builder="asrtune.models.tiny_ssl:make_tiny_wav2vec2_bert",
        tiny_sizes=("tiny", "w2v-bert-2.0"),
        sizes={"600M": "facebook/w2v-bert-2.0"},
        default_size="600M",
        model_types=("wav2vec2-bert", "wav2vec2_bert", "w2v-bert"),
        learning_rate=W2V_BERT_LEARNING_RATE,
    )
)

WAV2VEC2 = register(
    Family(
        name="wav2vec2",
        adapter="asrtune.models.wav2vec2",
        kind="ctc",
        label="wav2vec2",
        trains_when_frozen=_SSL_FROZEN,
        lora_help=_SSL_LORA,
        capabilities=_WAV2VEC2,
        recipe="asrtune.models.ssl_recipes:WAV2VEC2_RECIPE",
        tiny_builder="asrtune.models.tiny_ssl:make_tiny_wav2vec2",
        tiny_sizes=("tiny", "tiny-mms", "xls-r-300m", "mms-1b"),
        # pretrained-only encoders (no CTC head, no tokenizer: train with --new_vocabulary)
        # and MMS's CTC model with per-language adapters
        sizes={
            "XLS-R 300M": "facebook/wav2vec2-xls-r-300m",
            "XLS-R 1B": "facebook/wav2vec2-xls-r-1b",
            "MMS 300M": "facebook/mms-300m",
            "MMS 1B": "facebook/mms-1b",
            "MMS 1B all (adapters)": "facebook/mms-1b-all",
        },
        default_size="XLS-R 300M",
        model_types=("wav2vec2", "xls-r", "mms-"),
        learning_rate=SSL_LEARNING_RATE,
    )
)

HUBERT = register(
    Family(
        name="hubert",
        adapter="asrtune.models.hubert",
        kind="ctc",
        label="HuBERT",
        trains_when_frozen=_SSL_FROZEN,
        lora_help=_SSL_LORA,
        capabilities=_SSL_CTC,
        recipe="asrtune.models.ssl_recipes:HUBERT_RECIPE",
        tiny_builder="asrtune.models.tiny_ssl:make_tiny_hubert",
        sizes={"large": "facebook/hubert-large-ll60k", "x-large": "facebook/hubert-xlarge-ll60k"},
        default_size="large",
        learning_rate=SSL_LEARNING_RATE,
    )
)

WAVLM = register(
    Family(
        name="wavlm",
        adapter="asrtune.models.wavlm",
        kind="ctc",
        label="WavLM",
        trains_when_frozen=_SSL_FROZEN,
        lora_help=_SSL_LORA,
        capabilities=_SSL_CTC,
        recipe="asrtune.models.ssl_recipes:WAVLM_RECIPE",
        tiny_builder="asrtune.models.tiny_ssl:make_tiny_wavlm",
        sizes={"base+": "microsoft/wavlm-base-plus", "large": "microsoft/wavlm-large"},
        default_size="large",
        learning_rate=SSL_LEARNING_RATE,
    )
)

DATA2VEC_AUDIO = register(
    Family(
        name="data2vec_audio",
        adapter="asrtune.models.data2vec_audio",
        kind="ctc",
        label="data2vec-audio",
        trains_when_frozen=_SSL_FROZEN,
        lora_help=_SSL_LORA,
        capabilities=_SSL_CTC,
        recipe="asrtune.models.ssl_recipes:DATA2VEC_AUDIO_RECIPE",
        tiny_builder="asrtune.models.tiny_ssl:make_tiny_data2vec_audio",
        sizes={"base": "facebook/data2vec-audio-base", "large": "facebook/data2vec-audio-large"},
        default_size="large",
        model_types=("data2vec-audio", "data2vec_audio"),
        learning_rate=SSL_LEARNING_RATE,
    )
)
