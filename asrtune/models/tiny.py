"""Tiny random Whisper checkpoints that load with ``from_pretrained`` and need no network.

Tests and smoke runs need a Whisper model that trains in milliseconds on a CPU but otherwise
honours the real contracts: :func:`make_tiny_whisper` writes a folder that
``WhisperForConditionalGeneration.from_pretrained`` and ``WhisperProcessor.from_pretrained``
load, with

* a byte-level BPE tokenizer trained here on a built-in English/French/German sample
  (:data:`SAMPLE_SENTENCES`), followed by Whisper's special tokens in Whisper's order, so that
  ``set_prefix_tokens``, ``decode(skip_special_tokens=True)``, timestamps and
  ``model.generate(language=..., task=...)`` work exactly as for an ``openai/whisper-*``
  checkpoint;
* the standard 30-s ``WhisperFeatureExtractor`` (80 mel bins, hop 160 samples at 16 kHz, so
  3000 frames per window) and an encoder with ``max_source_positions=1500`` — the real input
  contract: the encoder only accepts mel inputs of exactly ``2 * max_source_positions`` frames;
* a model with ``d_model=16`` and one encoder and one decoder layer (~70 k parameters): a
  training step with batch 4 takes about 40 ms on a 2-core CPU.

Token id layout (``V`` = size of the trained BPE vocabulary, 256 byte symbols + merges)::

    0 .. V-1             byte-level BPE (GPT-2 byte alphabet + merges)
    V                    <|endoftext|>          eos = pad = bos = unk
    V+1                  <|startoftranscript|>  decoder_start_token_id
    V+2 .. V+101         <|en|> <|zh|> <|de|> ... <|yue|>   (all 100 of ``LANGUAGES``, in order)
    V+102                <|translate|>
    V+103                <|transcribe|>
    V+104                <|startoflm|>
    V+105                <|startofprev|>        prompt marker (prev_sot_token_id)
    V+106                <|nospeech|>
    V+107                <|notimestamps|>       no_timestamps_token_id
    V+108 .. V+1608      <|0.00|> .. <|30.00|>  timestamps, 0.02 s apart (not "special")

All 100 language tokens are needed, not just a few: ``WhisperTokenizer.prefix_tokens`` computes
the language id as ``sot_id + 1 + index of the code in LANGUAGES``. English-only tokenizers keep
the language tokens too, like OpenAI's ``*.en`` checkpoints; what makes a model English-only is
its generation config (``is_multilingual=False``, no ``lang_to_id``/``task_to_id``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from asrtune.resources import english_spelling_mapping

# transformers 5 has one Whisper tokenizer class, backed by ``tokenizers`` (the old "fast" one).
WhisperTokenizerFast = WhisperTokenizer

__all__ = [
    "BPE_VOCAB_SIZE",
    "MAX_SOURCE_POSITIONS",
    "MAX_TARGET_POSITIONS",
    "N_TIMESTAMPS",
    "SAMPLE_SENTENCES",
    "TIMESTAMP_PRECISION_S",
    "WHISPER_SIZES",
    "WhisperTokenizerFast",
    "build_tiny_whisper_tokenizer",
    "make_tiny_whisper",
    "tiny_generation_config",
    "tiny_whisper_config",
]

#: Target size of the trained byte-level BPE vocabulary, 256 byte symbols included.
BPE_VOCAB_SIZE = 512
#: Encoder positions; the encoder input must be ``2 * MAX_SOURCE_POSITIONS`` = 3000 mel frames,
#: exactly what the standard 30-s ``WhisperFeatureExtractor`` (hop 160 at 16 kHz) produces.
MAX_SOURCE_POSITIONS = 1500
#: Decoder positions: labels/generations are at most this many tokens, prefix included.
MAX_TARGET_POSITIONS = 64
#: Number of timestamp tokens ``<|0.00|>`` .. ``<|30.00|>``.
N_TIMESTAMPS = 1501
#: Seconds between two consecutive timestamp tokens.
TIMESTAMP_PRECISION_S = 0.02

EOT = "<|endoftext|>"
SOT = "<|startoftranscript|>"
TRANSLATE = "<|translate|>"
TRANSCRIBE = "<|transcribe|>"
STARTOFLM = "<|startoflm|>"
STARTOFPREV = "<|startofprev|>"
NOSPEECH = "<|nospeech|>"
NOTIMESTAMPS = "<|notimestamps|>"

#: Built-in text the BPE is trained on; also handy as transcripts in tests (keys: ISO codes).
SAMPLE_SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The quick brown fox jumps over the lazy dog.",
        "Hello, my name is Anna and I live in a small town near the sea.",
        "Every morning I drink a cup of coffee and read the news before work.",
        "The weather today is cold and windy, but the sun is shining.",
        "Can you tell me the way to the train station, please?",
        "We are going to the market to buy bread, cheese, apples and fresh fish.",
        "This model was trained on speech from many different speakers.",
        "Please speak slowly and clearly so that everyone can understand you.",
        "It's seven o'clock, and the children are still playing in the garden.",
        "They said the meeting would start at ten, but nobody came until half past.",
        "I think that the answer is simple: listen first, then write what you hear.",
        "Numbers like 1, 2, 3 and 2024 should also be written correctly.",
        "She read the letter twice, smiled, and put it back in the envelope.",
        "The colour of the old theatre was grey, and the centre of town was quiet.",
    ),
    "fr": (
        "Bonjour, je m'appelle Claire et j'habite à Paris depuis dix ans.",
        "Le petit chat dort sur le canapé pendant que la pluie tombe.",
        "Nous allons au marché pour acheter du pain, du fromage et des pommes.",
        "Il fait très froid ce matin, mais le soleil brille au-dessus de la ville.",
        "Pouvez-vous me dire où se trouve la gare, s'il vous plaît ?",
        "Les enfants jouent dans le jardin après l'école avec leurs amis.",
        "Ce modèle a été entraîné sur la parole de nombreux locuteurs différents.",
        "Parlez lentement et clairement pour que tout le monde vous comprenne.",
        "Il est sept heures et demie, le café est prêt et le train part bientôt.",
        "Elle a lu la lettre deux fois, puis elle l'a remise dans l'enveloppe.",
        "Je pense que la réponse est simple : écouter d'abord, écrire ensuite.",
        "Où êtes-vous allés en vacances l'été dernier ? À la mer ou à la montagne ?",
    ),
    "de": (
        "Guten Morgen, ich heiße Jonas und wohne seit zwei Jahren in Berlin.",
        "Die kleine Katze schläft auf dem Sofa, während es draußen regnet.",
        "Wir gehen auf den Markt, um Brot, Käse und frische Äpfel zu kaufen.",
        "Heute ist es sehr kalt, aber die Sonne scheint über der Stadt.",
        "Können Sie mir bitte sagen, wo der Bahnhof ist?",
        "Die Kinder spielen nach der Schule mit ihren Freunden im Garten.",
        "Dieses Modell wurde mit der Sprache vieler verschiedener Sprecher trainiert.",
        "Bitte sprechen Sie langsam und deutlich, damit alle Sie verstehen.",
        "Es ist halb acht, der Kaffee ist fertig und der Zug fährt gleich ab.",
        "Sie las den Brief zweimal, lächelte und steckte ihn zurück in den Umschlag.",
        "Ich glaube, die Antwort ist einfach: zuerst zuhören, dann schreiben.",
        "Die Straße ist lang und die Brücke über den Fluss ist schön.",
    ),
}


def _special_tokens() -> list[str]:
    """Whisper's special tokens after the BPE vocabulary, ``<|endoftext|>`` first."""
    languages = [f"<|{code}|>" for code in LANGUAGES]
    return [
        EOT,
        SOT,
        *languages,
        TRANSLATE,
        TRANSCRIBE,
        STARTOFLM,
        STARTOFPREV,
        NOSPEECH,
        NOTIMESTAMPS,
    ]


def _timestamp_tokens() -> list[str]:
    """``<|0.00|>`` .. ``<|30.00|>``, spelled like ``WhisperTokenizer.timestamp_ids`` expects."""
    return ["<|%.2f|>" % (i * TIMESTAMP_PRECISION_S) for i in range(N_TIMESTAMPS)]


def sample_corpus() -> list[str]:
    """Every sentence of :data:`SAMPLE_SENTENCES`, the text the tiny tokenizers train on."""
    return [sentence for sentences in SAMPLE_SENTENCES.values() for sentence in sentences]


def train_byte_level_bpe(
    pre_tokenizer: pre_tokenizers.PreTokenizer, corpus: list[str], vocab_size: int
) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    """Train a byte-level BPE of at most ``vocab_size`` tokens on ``corpus``, split by
    ``pre_tokenizer`` (deterministic).

    Returns ``(vocab items, merges)``: vocab maps byte-level token strings to ids
    ``0 .. len-1`` (the 256 byte symbols first, then one token per merge); merges are
    ``(left, right)`` pairs in priority order.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    vocab = tuple(sorted(model["vocab"].items(), key=lambda item: item[1]))
    if [i for _, i in vocab] != list(range(len(vocab))):
        raise RuntimeError("trained BPE vocabulary ids are not contiguous")
    merges = tuple(
        tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]
    )
    return vocab, merges


@cache
def _train_bpe(vocab_size: int = BPE_VOCAB_SIZE) -> tuple[tuple[tuple[str, int], ...], tuple]:
    """A GPT-2 style byte-level BPE on :data:`SAMPLE_SENTENCES` (see
    :func:`train_byte_level_bpe`), with the pre-tokenization Whisper uses (GPT-2 regex,
    byte-level alphabet, no prefix space)."""
    return train_byte_level_bpe(
        pre_tokenizers.ByteLevel(add_prefix_space=False), sample_corpus(), vocab_size
    )


def build_tiny_whisper_tokenizer(multilingual: bool = True) -> WhisperTokenizer:
    """A small Whisper tokenizer: trained byte-level BPE + Whisper's special tokens.

    See the module docstring for the id layout; the ids depend only on the built-in sample,
    so every call returns an identical tokenizer (2119 tokens: 510 BPE + 108 special + 1501
    timestamps). No language or task is preset, so the default prefix is
    ``[sot, <|notimestamps|>]``. ``multilingual`` is accepted for symmetry with
    :func:`make_tiny_whisper` but changes nothing: like OpenAI's ``*.en`` checkpoints, the
    English-only tokenizer keeps the language and task tokens (ids stay aligned with
    ``LANGUAGES``); English-only-ness lives in the generation config.

    Example: ``tok.set_prefix_tokens(language="fr", task="transcribe")`` then
    ``tok("bonjour").input_ids == [sot, <|fr|>, <|transcribe|>, <|notimestamps|>, ..., eot]``.
    """
    vocab_items, merges = _train_bpe()
    tokenizer = WhisperTokenizer(
        vocab=dict(vocab_items),
        merges=[tuple(m) for m in merges],
        unk_token=EOT,
        bos_token=EOT,
        eos_token=EOT,
        pad_token=EOT,
        add_prefix_space=False,
        # Exact decode round trips: the clean-up would eat the space in French "vous ?".
        clean_up_tokenization_spaces=False,
        model_max_length=MAX_TARGET_POSITIONS,
    )
    tokenizer.add_special_tokens({"extra_special_tokens": _special_tokens()})
    # Timestamps are added, unsplittable tokens but not "special": like the hub tokenizers,
    # decode(skip_special_tokens=True) keeps them and Whisper's decode filters them by regex.
    tokenizer.add_tokens(
        [
            AddedToken(t, single_word=False, lstrip=False, rstrip=False, normalized=False)
            for t in _timestamp_tokens()
        ],
        special_tokens=False,
    )
    # Hub tokenizers ship OpenAI's spelling map as normalizer.json; decode(normalize=True) needs it.
    tokenizer.english_spelling_normalizer = english_spelling_mapping()
    # __init__ built the prefix post-processor before the special tokens existed.
    tokenizer.set_prefix_tokens()

    expected = len(vocab_items)
    for token in [*_special_tokens(), *_timestamp_tokens()]:
        if tokenizer.convert_tokens_to_ids(token) != expected:
            raise RuntimeError(f"tiny Whisper tokenizer: {token} is not at id {expected}")
        expected += 1
    return tokenizer


#: Architectures :func:`make_tiny_whisper` can build (random weights, this tokenizer): the
#: tiny test model, and the dimensions of ``openai/whisper-small`` and ``-large-v3`` (their
#: config.json), for benchmarks. Their output layer keeps the real vocabulary size; the
#: tokenizer's ~2.1 k ids are its first rows.
WHISPER_SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "num_mel_bins": 80,
        "d_model": 16,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 32,
        "decoder_ffn_dim": 32,
        "max_target_positions": MAX_TARGET_POSITIONS,
    },
    "small": {
        "vocab_size": 51865,
        "num_mel_bins": 80,
        "d_model": 768,
        "encoder_layers": 12,
        "decoder_layers": 12,
        "encoder_attention_heads": 12,
        "decoder_attention_heads": 12,
        "encoder_ffn_dim": 3072,
        "decoder_ffn_dim": 3072,
        "max_target_positions": 448,
    },
    "large-v3": {
        "vocab_size": 51866,
        "num_mel_bins": 128,
        "d_model": 1280,
        "encoder_layers": 32,
        "decoder_layers": 32,
        "encoder_attention_heads": 20,
        "decoder_attention_heads": 20,
        "encoder_ffn_dim": 5120,
        "decoder_ffn_dim": 5120,
        "max_target_positions": 448,
    },
}


def tiny_whisper_config(
    vocab_size: int, tokenizer: WhisperTokenizer, size: str = "tiny"
) -> WhisperConfig:
    """Model config for the tiny Whisper (~70 k parameters with a ~2.1 k vocabulary), or
    one with the dimensions of ``size`` (see :data:`WHISPER_SIZES`).

    ``vocab_size`` is the number of output classes, normally ``len(tokenizer)`` (a size's
    own vocabulary wins when larger). Encoder input: ``(batch, mel bins, 2 * 1500 = 3000
    frames)``; the tiny decoder has 64 positions.
    """
    dims = dict(WHISPER_SIZES[size])
    vocab_size = max(vocab_size, dims.pop("vocab_size", 0))
    eot = tokenizer.convert_tokens_to_ids(EOT)
    sot = tokenizer.convert_tokens_to_ids(SOT)
    if max(eot, sot) >= vocab_size:
        raise ValueError(f"vocab_size={vocab_size} does not cover the tokenizer's special tokens")
    return WhisperConfig(
        vocab_size=vocab_size,
        **dims,
        max_source_positions=MAX_SOURCE_POSITIONS,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        # The defaults (220, 50256) point outside the tiny vocabulary.
        suppress_tokens=[],
        begin_suppress_tokens=[eot],
    )


def tiny_generation_config(
    config: WhisperConfig, tokenizer: WhisperTokenizer, multilingual: bool = True
) -> GenerationConfig:
    """Generation config with everything ``WhisperForConditionalGeneration.generate`` reads.

    Multilingual: ``lang_to_id`` (all 100 ``<|xx|>`` tokens) and ``task_to_id`` so that
    ``generate(input_features, language="fr", task="transcribe")`` works; without a language
    ``generate`` detects one. English-only: ``is_multilingual=False`` and no ``lang_to_id``, so
    ``generate(input_features)`` starts from ``[sot, <|notimestamps|>]``.
    """
    ids = tokenizer.convert_tokens_to_ids
    eot = ids(EOT)
    gen = GenerationConfig(
        decoder_start_token_id=ids(SOT),
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=config.max_target_positions,
        suppress_tokens=[],
        begin_suppress_tokens=[eot],
    )
    gen.no_timestamps_token_id = ids(NOTIMESTAMPS)
    gen.prev_sot_token_id = ids(STARTOFPREV)
    gen.is_multilingual = multilingual
    gen.return_timestamps = False
    gen.max_initial_timestamp_index = 50
    # (decoder layer, head) pairs for token-level timestamps: all heads of the tiny decoder.
    gen.alignment_heads = [
        [config.decoder_layers - 1, h] for h in range(config.decoder_attention_heads)
    ]
    if multilingual:
        gen.lang_to_id = {f"<|{code}|>": ids(f"<|{code}|>") for code in LANGUAGES}
        gen.task_to_id = {"translate": ids(TRANSLATE), "transcribe": ids(TRANSCRIBE)}
    return gen


def make_tiny_whisper(
    out_dir: str | Path, multilingual: bool = True, seed: int = 0, size: str = "tiny"
) -> Path:
    """Write a tiny random Whisper checkpoint (model, processor, generation config) to ``out_dir``
    (``size``: another architecture from :data:`WHISPER_SIZES`, same tokenizer).

    Files: ``config.json``, ``generation_config.json``, ``model.safetensors``,
    ``processor_config.json`` (holds the standard 30-s feature extractor: 16 kHz, 80 mel bins,
    hop 160, ``n_samples=480000``, 3000 frames), ``tokenizer.json``, ``tokenizer_config.json``
    and ``normalizer.json`` (spelling map for ``decode(normalize=True)``). Weights depend only
    on ``seed``; the caller's global torch RNG state is left untouched. Takes ~0.1 s once
    transformers is imported. Returns ``Path(out_dir)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tiny_whisper_tokenizer(multilingual=multilingual)
    config = tiny_whisper_config(len(tokenizer), tokenizer, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WhisperForConditionalGeneration(config)
    model.generation_config = tiny_generation_config(config, tokenizer, multilingual=multilingual)
    model.save_pretrained(out)

    feature_extractor = WhisperFeatureExtractor(
        feature_size=config.num_mel_bins,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
    )
    if feature_extractor.nb_max_frames != 2 * config.max_source_positions:
        raise RuntimeError("feature extractor window does not match the encoder input length")
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)
    # transformers 5 no longer writes normalizer.json on save but still reads it on load.
    (out / "normalizer.json").write_text(
        json.dumps(english_spelling_mapping(), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    return out
