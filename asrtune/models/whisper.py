"""Whisper (all sizes, multilingual and .en): loading, labels, packed training data, generation.

Label layout (what the model is trained to emit after ``<|startoftranscript|>``, which the
model itself prepends to the decoder input): ``[<|lang|>, <|task|>]`` for multilingual
models, then ``<|notimestamps|>``, the text tokens, ``<|endoftext|>``. The leading start
token is never part of the labels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

from asrtune.data.audio import SAMPLE_RATE
from asrtune.data.batching import (
    PackItem,
    WindowPacker,
)
from asrtune.data.windows import PLAIN_WINDOW, Example, WindowPlan, window_audio
from asrtune.errors import AsrtuneError
from asrtune.models import (
    Limits,
    LoadedModel,
    Transcript,
    from_pretrained,
    inference_precision,
    processor_from_first,
    refuse_quantization,
    token_budget,
    weight_options,
)
from asrtune.models.kinds.encoder_decoder import (  # noqa: F401 (the kind's shared work)
    KIND,
    LORA_TARGETS,
    LORA_TASK_TYPE,
    LOSS_SHIFTS_LABELS,
    collate,
    default_lora_targets,
    freeze_encoder,
    save,
    summed_loss,
)
from asrtune.transcripts import Segment, tidy_segments

FAMILY = "whisper"
# measured on the demo's data against 2e-5 ... 5e-3: see docs/benchmarks.md
LORA_LEARNING_RATE = 1e-3
#: What training mixes in by default to keep the pretrained model's abilities (see
#: asrtune.data.windows.TrainingMix); measured on the demo, see docs/benchmarks.md
TRAINING_MIX = {
    "timestamp_share": 0.5,
    "nonspeech_share": 0.2,
    "single_share": 0.05,
    "natural_gaps": True,
}
GPU_INFERENCE_DTYPE = "float16"  # openai-whisper's own default on CUDA
TIMESTAMP_STEP_SECONDS = 0.02


class _WhisperOwnGenerateCall(logging.Filter):
    """Drops transformers' "Passing `generation_config` together with generation-related
    arguments" deprecation warning when it names only ``suppress_tokens`` /
    ``begin_suppress_tokens``: Whisper's own ``generate`` (transformers 5.25,
    ``generation_whisper.py``) passes both beside its generation config in every call,
    whatever the caller does, so the warning tells a user nothing they could change."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("Passing `generation_config` together with")
            and "suppress_tokens" in message
            and "arguments=({" in message
            and _only_suppress_tokens(message)
        )


def _only_suppress_tokens(message: str) -> bool:
    named = message.split("arguments=({", 1)[1].split("})", 1)[0]
    return {name.strip(" '\"") for name in named.split(",")} <= {
        "suppress_tokens",
        "begin_suppress_tokens",
    }


logging.getLogger("transformers.generation.utils").addFilter(_WhisperOwnGenerateCall())


def load_processor(path: str, fallback: str | None = None) -> WhisperProcessor:
    what = "Whisper processor (tokenizer + feature extractor)"
    return processor_from_first(WhisperProcessor.from_pretrained, path, fallback, what)


def load(
    name_or_path: str,
    *,
    dtype: torch.dtype | None = None,
    device: str | None = None,
    allow_pickle: bool = False,
    quantization: str | None = None,
) -> LoadedModel:
    """Load a Whisper checkpoint (Hub id or folder). Only safetensors unless ``allow_pickle``;
    no ``quantization`` (the family declares no quantized base)."""
    refuse_quantization(quantization, FAMILY)
    options = weight_options(dtype, allow_pickle)
    model = from_pretrained(WhisperForConditionalGeneration, name_or_path, "Whisper", **options)
    if device is not None:
        model.to(device)
    return LoadedModel(model, load_processor(name_or_path), FAMILY, name_or_path)


def is_multilingual(loaded: LoadedModel) -> bool:
    flag = getattr(loaded.model.generation_config, "is_multilingual", None)
    if flag is not None:
        return bool(flag)
    return loaded.model.config.vocab_size >= 51865


def sole_language(loaded: LoadedModel) -> str | None:
    """The language an English-only (.en) model speaks ("en"); None if multilingual."""
    return None if is_multilingual(loaded) else "en"


def limits(loaded: LoadedModel) -> Limits:
    extractor = loaded.processor.feature_extractor
    return Limits(
        max_seconds=extractor.n_samples / extractor.sampling_rate,
        max_label_tokens=loaded.model.config.max_target_positions,
    )


def language_code(language: str) -> str:
    """'en', 'EN', 'english' → 'en'; raises for languages Whisper does not know."""
    key = language.strip().lower()
    if key in LANGUAGES:
        return key
    if key in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[key]
    raise AsrtuneError(f"Whisper does not know the language {language!r}")


def _token_id(loaded: LoadedModel, token: str) -> int:
    tokenizer = loaded.processor.tokenizer
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise AsrtuneError(f"the tokenizer of {loaded.source} has no {token} token")
    return token_id


def label_prefix(loaded: LoadedModel, language: str | None, task: str) -> list[int]:
    """Token ids between ``<|startoftranscript|>`` and the text."""
    prefix = []
    if is_multilingual(loaded):
        if language is None:
            raise AsrtuneError(
                "a multilingual Whisper needs a language: "
                "add a 'language' column or pass --language"
            )
        prefix += [
            _token_id(loaded, f"<|{language_code(language)}|>"),
            _token_id(loaded, f"<|{task}|>"),
        ]
    elif task != "transcribe":
        raise AsrtuneError(f"English-only model {loaded.source} cannot {task}")
    return [*prefix, _token_id(loaded, "<|notimestamps|>")]


def decoder_prompt(loaded: LoadedModel, language: str | None, task: str) -> list[int]:
    """The encoder-decoder kind's hook: :func:`label_prefix`."""
    return label_prefix(loaded, language, task)


def text_tokens(loaded: LoadedModel, text: str) -> list[int]:
    """Text ids with Whisper's leading space, so packed utterances concatenate cleanly."""
    return loaded.processor.tokenizer(" " + text.strip(), add_special_tokens=False).input_ids


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """Labels for one window holding ``texts`` in order (see the module docstring).

    With ``spans`` (start, end seconds in the window, one per text) each text is wrapped in
    timestamp tokens, ``<|1.20|> text <|3.48|>``, and ``<|notimestamps|>`` is left out.
    Empty texts (non-speech) add nothing; with no text left the labels say nothing, in
    the no-timestamps layout.
    """
    ids = label_prefix(loaded, language, task)
    marks = spans if spans is not None else [None] * len(texts)
    spoken = [(text, span) for text, span in zip(texts, marks, strict=True) if text.strip()]
    if spans is None or not spoken:
        for text, _ in spoken:
            ids += text_tokens(loaded, text)
    else:
        ids = ids[:-1]  # drop <|notimestamps|>
        for text, (start, end) in spoken:
            ids += [timestamp_token(loaded, start), *text_tokens(loaded, text)]
            ids.append(timestamp_token(loaded, end))
    return [*ids, loaded.processor.tokenizer.eos_token_id]


def timestamp_token(loaded: LoadedModel, seconds: float) -> int:
    """The ``<|s.ss|>`` token nearest ``seconds`` (Whisper's 0.02-s grid, 0–30 s)."""
    step = TIMESTAMP_STEP_SECONDS
    seconds = min(max(round(seconds / step) * step, 0.0), limits(loaded).max_seconds)
    return _token_id(loaded, f"<|{seconds:.2f}|>")


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item from utterances sharing a window, laid out by ``plan`` (see
    :func:`asrtune.data.windows.window_audio`); with ``plan.timestamps`` the labels mark
    each utterance's start and end. Utterances without text (non-speech clips) add audio
    but no labels.

    Returns ``{"input_features": (n_mels, n_frames) float32, "labels": list[int],
    "decoder_input_ids": list[int]}``: the decoder's input is the labels shifted right
    behind ``<|startoftranscript|>`` (given here, so the model needs no labels and
    computes no loss of its own, see ``AsrTrainer.compute_loss``).
    """
    extractor = loaded.processor.feature_extractor
    audio, spans = window_audio(window, plan)
    features, _ = window_features(extractor, [audio[: extractor.n_samples]])
    texts = [ex.row.text for ex in window]
    labels = encode_labels(
        loaded, texts, window[0].language, task, spans if plan.timestamps else None
    )
    start = loaded.model.config.decoder_start_token_id
    item = {
        "input_features": features[0],
        "labels": labels,
        "decoder_input_ids": [start, *labels[:-1]],
    }
    return with_previous_text(loaded, item, plan.prompt) if plan.prompt else item


def label_overhead(loaded: LoadedModel) -> int:
    """Label tokens that are not text: the prompt (language, task, no-timestamps) + EOS."""
    return (3 if is_multilingual(loaded) else 1) + 1


def pack_item(
    loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
) -> PackItem:
    """Packing size of an example: its seconds and the label tokens it adds to a window,
    its text tokens plus, when ``timestamps``, its two timestamp tokens.

    ``example.num_tokens`` counts the labels of the example alone, made with the same
    ``timestamps`` (see ``asrtune.training_data.admit_row``); the prompt and EOS come off
    (with timestamps the prompt has no ``<|notimestamps|>``).
    """
    prompt = label_overhead(loaded) - (1 if timestamps else 0)
    duration = example.row.duration or limits(loaded).max_seconds
    return PackItem(duration, example.num_tokens - prompt, example.language or "")


def packer(loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
    """A packer for this model's window and label budget (prompt tokens reserved)."""
    lim = limits(loaded)
    return WindowPacker(lim.max_seconds, lim.max_label_tokens - label_overhead(loaded))


def _features(
    loaded: LoadedModel, audios: Sequence[np.ndarray]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel (B, n_mels, frames) and its frame mask (B, frames).

    Frames are one full window each, or, when any input is longer, enough for the longest
    input (long-form decoding).
    """
    extractor = loaded.processor.feature_extractor
    if max(len(a) for a in audios) <= extractor.n_samples:
        return window_features(extractor, audios)
    out = extractor(
        list(audios),
        sampling_rate=SAMPLE_RATE,
        return_tensors="pt",
        return_attention_mask=True,
        truncation=False,
        padding="longest",
    )
    return out.input_features, out.attention_mask


def window_features(
    extractor: Any, audios: Sequence[np.ndarray]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The extractor's 30-s window features (B, n_mels, n_frames) and frame mask
    (B, n_frames) for clips of at most 30 s, computed only as far as the audio reaches.

    Frames that see nothing but zero padding all hold the clip's floor value, so the
    extractor runs on the audio plus one FFT of zeros and the rest is filled in: equal to
    padding every clip to 30 s (tested), at a fraction of the cost for short clips. An
    extractor that dithers adds noise to the padding as well, so it gets the whole window.
    """
    if getattr(extractor, "dither", 0.0):
        out = extractor(
            list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True
        )
        return out.input_features, out.attention_mask
    hop = extractor.hop_length
    longest = max(len(a) for a in audios)
    reach = min(extractor.n_samples, -(-(longest + extractor.n_fft) // hop) * hop)
    padded = np.zeros((len(audios), reach), dtype=np.float32)
    for i, audio in enumerate(audios):
        padded[i, : len(audio)] = audio
    out = extractor(
        list(padded),
        sampling_rate=SAMPLE_RATE,
        return_tensors="pt",
        return_attention_mask=True,
        padding="longest",
    )
    features = out.input_features  # (B, n_mels, reach // hop)
    frames = extractor.nb_max_frames
    # log-mel is floored at (max - 8) / 4 below its max and never below (-10 + 4) / 4
    floor = torch.clamp(features.amax(dim=(1, 2)) - 2.0, min=-1.5)
    full = floor[:, None, None].expand(-1, features.shape[1], frames).clone()
    full[:, :, : features.shape[-1]] = features
    mask = torch.zeros(len(audios), frames, dtype=out.attention_mask.dtype)
    for i, audio in enumerate(audios):
        mask[i, : -(-len(audio) // hop)] = 1
    return full, mask


def _prompt_length(loaded: LoadedModel) -> int:
    """Tokens of the decoder prompt one window's decoding starts from: ``<|startoftranscript|>``,
    a multilingual model's language and task (given or detected), ``<|notimestamps|>``."""
    return 4 if is_multilingual(loaded) else 2


def _token_budget(loaded: LoadedModel, audios: Sequence[np.ndarray], requested: int | None) -> int:
    """New tokens allowed per window: ``requested`` or a cap from the audio's duration,
    never more than the decoder's positions leave after the prompt.

    It is passed as ``max_length``: transformers' Whisper generate adds the prompt's length
    to it (``WhisperGenerationMixin._set_max_new_tokens_and_length``, capped at
    ``max_target_positions``), so it caps the new tokens. ``max_new_tokens`` is not used
    because the checkpoint's generation config sets ``max_length`` and the two conflict.
    """
    extractor = loaded.processor.feature_extractor
    window_seconds = min(max(len(a) for a in audios), extractor.n_samples) / SAMPLE_RATE
    budget = token_budget(window_seconds, requested)
    return min(budget, loaded.model.config.max_target_positions - _prompt_length(loaded))


# Clips a CPU encodes at once: in slices of 2 the encoder's activations stay in cache;
# measured on tiny.en (2 cores, bf16): 62 ms per clip in slices of 2, 90 in one batch of 16.
CPU_ENCODER_SLICE = 2


def _encode_in_slices(model: torch.nn.Module, features: torch.Tensor) -> BaseModelOutput:
    """Encoder states (B, frames / 2, d_model) for features (B, n_mels, frames), computed
    ``CPU_ENCODER_SLICE`` clips at a time."""
    encoder = model.get_encoder()
    states = [encoder(part).last_hidden_state for part in features.split(CPU_ENCODER_SLICE)]
    return BaseModelOutput(last_hidden_state=torch.cat(states))


def _generate_kwargs(
    loaded: LoadedModel,
    attention_mask: torch.Tensor,
    language: str | None,
    task: str,
    num_beams: int,
) -> dict[str, Any]:
    """``model.generate`` arguments both decoding modes share: beams, the frame mask
    (B, frames) on the model's device, and a multilingual model's task and language."""
    device = next(loaded.model.parameters()).device
    kwargs: dict[str, Any] = {"num_beams": num_beams, "attention_mask": attention_mask.to(device)}
    if is_multilingual(loaded):
        kwargs["task"] = task
        if language is not None:
            kwargs["language"] = language_code(language)
    return kwargs


@torch.no_grad()  # not inference_mode: it turns off autocast's weight cache
def generate(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    language: str | None,
    task: str,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    precision: str = "auto",
) -> list[Transcript]:
    """Transcribe a batch of (n_samples,) 16-kHz arrays; audio over one window is long-form.
    ``precision``: see :func:`asrtune.models.inference_precision`. A short-form text that
    hit the token cap says so (``Transcript.capped``)."""
    return _generate(loaded, audios, language, task, num_beams, max_new_tokens, precision)


def _generate(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    language: str | None,
    task: str,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    precision: str = "auto",
    prompt_ids: torch.Tensor | None = None,
) -> list[Transcript]:
    """:func:`generate`, optionally from a previous-text prompt (``prompt_ids``, (P,):
    ``<|startofprev|>`` and text tokens), which is cut off the returned texts."""
    model = loaded.model
    features, attention_mask = _features(loaded, audios)
    param = next(model.parameters())
    kwargs = _generate_kwargs(loaded, attention_mask, language, task, num_beams)
    long_form = features.shape[-1] > loaded.processor.feature_extractor.nb_max_frames
    if long_form:
        kwargs["return_timestamps"] = True  # long-form decoding needs segment timestamps
    else:
        # one window, one pass: without this, a hypothesis that emits two timestamps in a
        # row is decoded again from its "next segment", which encoder states cannot cut
        kwargs["force_unique_generate_call"] = True
    budget = _token_budget(loaded, audios, max_new_tokens)
    prompted = 0 if prompt_ids is None else len(prompt_ids)
    if prompt_ids is not None:
        kwargs["prompt_ids"] = prompt_ids.to(param.device)
        budget = min(budget, model.config.max_target_positions - _prompt_length(loaded) - prompted)
    kwargs["max_length"] = budget  # new tokens: transformers adds the prompt (see _token_budget)
    features = features.to(param.device, param.dtype)
    with inference_precision(model, precision):
        if not long_form and param.device.type == "cpu":
            ids = model.generate(encoder_outputs=_encode_in_slices(model, features), **kwargs)
        else:
            ids = model.generate(features, **kwargs)
    if not isinstance(ids, torch.Tensor):
        ids = ids["sequences"]
    tokenizer = loaded.processor.tokenizer
    if prompt_ids is not None:
        ids = without_previous_text(ids, model.config.decoder_start_token_id)
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    # a sequence as long as allowed that did not end (padding is EOS too) hit the cap; the
    # sequences start with the prompt
    at_cap = not long_form and ids.shape[-1] >= _prompt_length(loaded) + budget
    capped = [at_cap and int(row[-1]) != tokenizer.eos_token_id for row in ids]
    return [Transcript(t.strip(), cap) for t, cap in zip(texts, capped, strict=True)]


# ----- hotwords: the terms as the decoder's previous text ------------------------------------


def hotword_prompt(hotwords: Sequence[str]) -> str:
    """The previous text that carries ``hotwords`` (inference and --prompt_share training)."""
    return ", ".join(hotwords)


def max_prompt_tokens(loaded: LoadedModel) -> int:
    """Text tokens a previous-text prompt may hold: Whisper's half of the decoder's
    positions (``max_target_positions // 2 - 1``, as openai/whisper keeps)."""
    return loaded.model.config.max_target_positions // 2 - 1


def hotword_prompt_ids(loaded: LoadedModel, hotwords: Sequence[str]) -> torch.Tensor | None:
    """(P,) ``<|startofprev|>`` + the tokens of :func:`hotword_prompt`; None for no hotwords.
    A list longer than :func:`max_prompt_tokens` is a one-line AsrtuneError."""
    if not hotwords:
        return None
    ids = loaded.processor.get_prompt_ids(hotword_prompt(hotwords), return_tensors="pt")
    if len(ids) - 1 > max_prompt_tokens(loaded):
        raise AsrtuneError(
            f"--hotwords: {len(hotwords)} terms take {len(ids) - 1} tokens, Whisper's prompt "
            f"holds at most {max_prompt_tokens(loaded)}: keep the terms that matter most"
        )
    return ids


def without_previous_text(ids: torch.Tensor, start_token: int) -> torch.Tensor:
    """Generated (B, T) ids without the previous-text prompt: each row from its
    ``<|startoftranscript|>`` on (left-padded with it where rows differ in length)."""
    rows = []
    for row in ids:
        starts = (row == start_token).nonzero()
        rows.append(row[int(starts[0]) :] if len(starts) else row)
    width = max(len(r) for r in rows)
    return torch.stack([torch.cat([r.new_full((width - len(r),), start_token), r]) for r in rows])


def with_previous_text(
    loaded: LoadedModel, item: dict[str, Any], terms: Sequence[str]
) -> dict[str, Any]:
    """A training item whose decoder first reads ``terms`` as previous text (as
    :func:`generate_boosted` prompts it): ``decoder_input_ids`` = ``<|startofprev|>`` +
    the prompt's tokens + the item's own; ``labels`` -100 over the prompt, so the loss
    never trains the model to say the prompt. The prompt's last terms are dropped where
    the decoder's positions would overflow (no prompt if none fits)."""
    room = loaded.model.config.max_target_positions - len(item["decoder_input_ids"])
    room = min(room, max_prompt_tokens(loaded) + 1)
    kept = list(terms)
    while kept:
        prompt = loaded.processor.get_prompt_ids(hotword_prompt(kept)).tolist()
        if len(prompt) <= room:
            return {
                **item,
                "labels": [-100] * len(prompt) + list(item["labels"]),
                "decoder_input_ids": prompt + list(item["decoder_input_ids"]),
            }
        kept.pop()
    return item


@torch.no_grad()
def generate_boosted(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    language: str | None,
    task: str,
    hotwords: Sequence[str],
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    precision: str = "auto",
) -> list[Transcript]:
    """:func:`generate` with ``hotwords`` as the previous text (``prompt_ids``): the decoder
    then favours their spellings. No hotwords: exactly :func:`generate`."""
    prompt = hotword_prompt_ids(loaded, hotwords)
    return _generate(loaded, audios, language, task, num_beams, max_new_tokens, precision, prompt)


@torch.no_grad()
def generate_segments(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    language: str | None,
    task: str,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    precision: str = "auto",
) -> list[list[Segment]]:
    """Timed transcripts of a batch of (n_samples,) 16-kHz arrays: per input, its segments
    with start/end in seconds from the input's start (in order, within its duration).

    Decodes with timestamp tokens window after window (transformers' ``return_segments``),
    also within one window: a hypothesis that stops at a segment boundary before the end
    of the audio (as Whisper does when speech runs up to the window's end) goes on from
    there. The text can differ a little from :func:`generate`'s, which decodes inputs
    within one window without timestamps.
    """
    model = loaded.model
    features, attention_mask = _features(loaded, audios)
    param = next(model.parameters())
    kwargs = _generate_kwargs(loaded, attention_mask, language, task, num_beams)
    kwargs |= {
        "return_timestamps": True,
        "return_segments": True,
        "force_unique_generate_call": False,
        "max_length": _token_budget(loaded, audios, max_new_tokens),  # per window, see there
    }
    with inference_precision(model, precision):
        out = model.generate(features.to(param.device, param.dtype), **kwargs)
    decode = loaded.processor.tokenizer.decode
    return [
        tidy_segments(
            [
                (float(s["start"]), float(s["end"]), decode(s["tokens"], skip_special_tokens=True))
                for s in found
            ],
            len(audio) / SAMPLE_RATE,
        )
        for found, audio in zip(out["segments"], audios, strict=True)
    ]


def allow_empty_transcripts(loaded: LoadedModel) -> None:
    """Let generation end at its first step. Whisper's generation config suppresses
    ``<|endoftext|>`` there (``begin_suppress_tokens``), so a model can never say nothing,
    and on silence it says "you"; a model trained on non-speech windows with empty
    transcripts must be allowed to. The change is saved with the model."""
    config = loaded.model.generation_config
    eos = loaded.processor.tokenizer.eos_token_id
    suppressed = list(getattr(config, "begin_suppress_tokens", None) or [])
    config.begin_suppress_tokens = [t for t in suppressed if t != eos] or None
