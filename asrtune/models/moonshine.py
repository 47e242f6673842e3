"""Moonshine (Useful Sensors' edge ASR, e.g. UsefulSensors/moonshine-tiny and -base):
loading, labels, training items, generation. Same functions as ``asrtune/models/whisper.py``
(the contract is :class:`asrtune.models.family.FamilyAdapter`).

The model reads raw 16-kHz audio of any length (``input_values``, no mel, no 30-s
window): three convolutions (strides 64, 3, 2) give one encoder position per 384 samples,
then rotary-attention encoder layers; a rotary decoder writes the transcript. The encoder
normalises its first convolution's output over the whole input (a one-group GroupNorm), so
zero padding in a batch changes every row's encoding a little: generation therefore
encodes each input alone and pads the encoder states (a batch transcribes exactly as each
input alone, and as the model card's code does); training batches are padded (as the
processor pads), and duration batching keeps that padding small.

Labels (what the decoder is trained to emit after ``<s>``, the decoder start token, which
is prepended to the decoder input and never part of the labels): the transcript's tokens,
then ``</s>``. There is no prompt: no language or task token (each checkpoint speaks one
language; English for moonshine-tiny and -base).

Decoding: greedy or beam search with the model's own ``generate`` on the encoder states,
stopping at ``</s>`` or the token cap (32 + 25 per second, within the decoder's positions).
Audio longer than :data:`MAX_AUDIO_SECONDS` is transcribed in consecutive pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrtune.data.audio import SAMPLE_RATE, consecutive_pieces
from asrtune.data.batching import PackItem, WindowPacker
from asrtune.data.windows import PLAIN_WINDOW, Example, WindowPlan, window_audio
from asrtune.models import (
    Limits,
    LoadedModel,
    Transcript,
    core_model,
    from_pretrained,
    inference_precision,
    processor_from_first,
    refuse_quantization,
    refuse_timestamps,
    require_transcribe,
    text_tokens,
    token_budget,
    weight_options,
)
from asrtune.models.kinds.encoder_decoder import KIND, summed_loss  # noqa: F401 (its kind)
from asrtune.transcripts import join_texts

FAMILY = "moonshine"
LORA_TASK_TYPE = None  # peft's SEQ_2_SEQ_LM wrapper passes input_ids, which Moonshine lacks
# NOT measured for Moonshine (no pretrained Moonshine offline): Whisper's measured rate for
# LoRA on an encoder-decoder of the same size class (docs/benchmarks.md)
LORA_LEARNING_RATE = 1e-3
LOSS_SHIFTS_LABELS = False  # the decoder input is the labels shifted right: logits align
GPU_INFERENCE_DTYPE = "bfloat16"  # float32 checkpoints; bf16 keeps float32's range
#: The encoder normalises over each padded input (a one-group GroupNorm): a batch's padding
#: changes its rows, so how a batch is split between processes changes training a little.
PADDING_CHANGES_OUTPUTS = True
TRAINING_MIX: dict[str, Any] = {}  # none measured: plain utterances
#: Attention (self and cross) and MLP projections of the encoder and decoder.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"]
#: Seconds of audio per training item and per generated piece: Moonshine was trained on
#: segments of up to 30 s, and its authors advise against much longer inputs.
MAX_AUDIO_SECONDS = 30.0
#: Samples the encoder's convolutions need for one output position (127 + 64 * (6 + 3 * 2)):
#: shorter inputs are zero-padded to it.
MIN_SAMPLES = 895
#: Samples per encoder position (the convolutions' strides, 64 * 3 * 2).
SAMPLES_PER_POSITION = 384
#: Value that pads decoder inputs on the right in a training batch: the decoder is causal,
#: so no label position sees it; any id would do.
PAD_TOKEN_ID = 0
LANGUAGES_BY_SUFFIX = ("ar", "zh", "ja", "ko", "uk", "vi", "es")


def load_processor(path: str, fallback: str | None = None) -> Any:
    """The checkpoint's ``Wav2Vec2Processor``: the raw-audio feature extractor and the
    tokenizer."""
    from transformers import AutoProcessor

    what = "Moonshine processor (tokenizer + feature extractor)"
    return processor_from_first(AutoProcessor.from_pretrained, path, fallback, what)


def load(
    name_or_path: str,
    *,
    dtype: torch.dtype | None = None,
    device: str | None = None,
    allow_pickle: bool = False,
    quantization: str | None = None,
) -> LoadedModel:
    """Load a Moonshine checkpoint (Hub id or folder). Only safetensors unless
    ``allow_pickle``; no ``quantization`` (the family declares no quantized base)."""
    refuse_quantization(quantization, FAMILY)
    from transformers import MoonshineForConditionalGeneration

    options = weight_options(dtype, allow_pickle)
    model = from_pretrained(MoonshineForConditionalGeneration, name_or_path, "Moonshine", **options)
    if device is not None:
        model.to(device)
    return LoadedModel(model, load_processor(name_or_path), FAMILY, name_or_path)


def sole_language(loaded: LoadedModel) -> str | None:
    """The one language the checkpoint speaks: the code that ends a language-specific
    checkpoint's name (``moonshine-tiny-ja`` → ``ja``), else English (moonshine-tiny and
    -base, and fine-tunes whose name says nothing)."""
    name = (loaded.base or loaded.source).rstrip("/").lower()
    suffix = name.rsplit("-", 1)[-1]
    return suffix if suffix in LANGUAGES_BY_SUFFIX else "en"


def limits(loaded: LoadedModel) -> Limits:
    """:data:`MAX_AUDIO_SECONDS` of audio, and the decoder's positions for the labels
    (``</s>`` included; the decoder start token takes the first position of the input,
    which is as long as the labels)."""
    positions = core_model(loaded.model).config.max_position_embeddings
    return Limits(max_seconds=MAX_AUDIO_SECONDS, max_label_tokens=positions)


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """Labels of one window holding ``texts`` in order: their tokens (the texts joined by
    spaces) and ``</s>``. ``language`` is not part of them (no language token); no
    translation, no ``spans`` (no timestamps)."""
    require_transcribe(task, "Moonshine")
    refuse_timestamps(spans is not None, "Moonshine")
    ids = text_tokens(loaded, join_texts(texts)) if join_texts(texts) else []
    return [*ids, loaded.processor.tokenizer.eos_token_id]


def model_input(audio: np.ndarray) -> np.ndarray:
    """(n,) 16-kHz audio as the encoder takes it: float32, zero-padded to
    :data:`MIN_SAMPLES`."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) >= MIN_SAMPLES:
        return audio
    return np.pad(audio, (0, MIN_SAMPLES - len(audio)))


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item from a window laid out by ``plan`` (see
    :func:`asrtune.data.windows.window_audio`; never with timestamps). Utterances without
    text add audio only.

    Returns ``{"input_values": (n_samples,) float32, "labels": list[int],
    "decoder_input_ids": list[int]}``: the decoder's input is the labels shifted right behind
    ``<s>`` (given here, so the model computes no loss of its own, see
    ``AsrTrainer.compute_loss``).
    """
    refuse_timestamps(plan.timestamps, "Moonshine")
    audio, _ = window_audio(window, plan)
    labels = encode_labels(loaded, [ex.row.text for ex in window], window[0].language, task)
    start = core_model(loaded.model).config.decoder_start_token_id
    return {
        "input_values": model_input(audio),
        "labels": labels,
        "decoder_input_ids": [start, *labels[:-1]],
    }


def pack_item(
    loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
) -> PackItem:
    """Packing size of an example: its seconds and its text tokens (``</s>`` excluded).
    Capabilities.packing is off for this family (see benchmarks/moonshine_packing.py):
    nothing packs unless that changes."""
    refuse_timestamps(timestamps, "Moonshine")
    duration = example.row.duration or MAX_AUDIO_SECONDS
    return PackItem(duration, example.num_tokens - 1, example.language or "")


def packer(loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
    """A packer for the training window (:data:`MAX_AUDIO_SECONDS`) and its label budget."""
    require_transcribe(task, "Moonshine")
    return WindowPacker(MAX_AUDIO_SECONDS, limits(loaded).max_label_tokens - 1)


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items.

    Returns ``input_values`` (B, S) float32 (zeros after each row's samples),
    ``attention_mask`` (B, S) int64 (1 on each row's samples), ``labels`` (B, L) int64
    padded with -100 (ignored by the loss) and ``decoder_input_ids`` (B, L) int64 padded
    with :data:`PAD_TOKEN_ID` (the decoder is causal: no label position sees the padding).
    """
    batch = len(features)
    samples = max(len(f["input_values"]) for f in features)
    longest = max(len(f["labels"]) for f in features)
    values = torch.zeros((batch, samples), dtype=torch.float32)
    mask = torch.zeros((batch, samples), dtype=torch.long)
    labels = torch.full((batch, longest), -100, dtype=torch.long)
    decoder_ids = torch.full((batch, longest), PAD_TOKEN_ID, dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_values"])
        values[i, :n] = torch.as_tensor(f["input_values"], dtype=torch.float32)
        mask[i, :n] = 1
        labels[i, : len(f["labels"])] = torch.tensor(f["labels"], dtype=torch.long)
        decoder_ids[i, : len(f["decoder_input_ids"])] = torch.tensor(f["decoder_input_ids"])
    return {
        "input_values": values,
        "attention_mask": mask,
        "labels": labels,
        "decoder_input_ids": decoder_ids,
    }


def default_lora_targets(freeze_encoder: bool) -> list[str] | str:
    """Attention and MLP projections; the decoder's only when the encoder is frozen."""
    if freeze_encoder:
        return rf"model\.decoder\..*\.({'|'.join(LORA_TARGETS)})"
    return list(LORA_TARGETS)


def freeze_encoder(model: torch.nn.Module) -> None:
    """Freeze the audio encoder (convolutions and layers): only the decoder trains."""
    core_model(model).get_encoder().requires_grad_(False)


def encoder_states(loaded: LoadedModel, audios: Sequence[np.ndarray]) -> Any:
    """Each input encoded alone, then padded: ``last_hidden_state`` (B, T, hidden) with
    zeros after each row's positions, and ``attention_mask`` (B, T) int (1 on them), T the
    longest row's positions (one per 384 samples)."""
    from transformers.models.moonshine.modeling_moonshine import MoonshineEncoderModelOutput

    model = core_model(loaded.model)
    encoder = model.get_encoder()
    param = next(model.parameters())
    states = [
        encoder(
            torch.from_numpy(model_input(a))[None].to(param.device, param.dtype)
        ).last_hidden_state[0]
        for a in audios
    ]
    longest = max(s.shape[0] for s in states)
    hidden = states[0].new_zeros((len(states), longest, states[0].shape[-1]))
    mask = torch.zeros((len(states), longest), dtype=torch.int, device=param.device)
    for i, state in enumerate(states):
        hidden[i, : state.shape[0]] = state
        mask[i, : state.shape[0]] = 1
    return MoonshineEncoderModelOutput(last_hidden_state=hidden, attention_mask=mask)


def _generate_batch(
    loaded: LoadedModel,
    audios: Sequence[np.ndarray],
    num_beams: int,
    max_new_tokens: int | None,
    precision: str,
) -> list[Transcript]:
    model = loaded.model
    tokenizer = loaded.processor.tokenizer
    positions = core_model(model).config.max_position_embeddings
    seconds = max(len(a) for a in audios) / SAMPLE_RATE
    budget = max(1, min(token_budget(seconds, max_new_tokens), positions - 1))
    eos = tokenizer.eos_token_id
    with inference_precision(model, precision):
        states = encoder_states(loaded, audios)
        ids = model.generate(
            encoder_outputs=states,
            attention_mask=states.attention_mask,  # the encoder's (it does not run again)
            max_new_tokens=budget,
            num_beams=num_beams,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=eos,
        )
    if not isinstance(ids, torch.Tensor):
        ids = ids["sequences"]
    new = ids[:, 1:]  # after <s>, the decoder start
    texts = tokenizer.batch_decode(new.tolist(), skip_special_tokens=True)
    capped = [new.shape[-1] >= budget and int(row[-1]) != eos for row in new]
    return [Transcript(t.strip(), cap) for t, cap in zip(texts, capped, strict=True)]


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
    """Transcribe a batch of (n_samples,) 16-kHz arrays of any length.

    Each input is encoded alone (see the module docstring); audio longer than
    :data:`MAX_AUDIO_SECONDS` is transcribed in consecutive pieces joined with spaces (a
    word on a cut may be split). ``language`` is not used (no language token).
    ``max_new_tokens`` caps each piece's tokens (default: 32 + 25 per second, within the
    decoder's positions); a capped transcript says so. ``precision``: see
    :func:`asrtune.models.inference_precision`.
    """
    require_transcribe(task, "Moonshine")
    pieces = [consecutive_pieces(a, MAX_AUDIO_SECONDS) for a in audios]
    flat = [piece for row in pieces for piece in row]
    texts = _generate_batch(loaded, flat, num_beams, max_new_tokens, precision)
    out: list[Transcript] = []
    position = 0
    for row in pieces:
        mine = texts[position : position + len(row)]
        position += len(row)
        out.append(Transcript(join_texts(mine), any(t.capped for t in mine)))
    return out


def allow_empty_transcripts(loaded: LoadedModel) -> None:
    """Nothing to do: Moonshine's generation suppresses no token at its first step, so it
    may end at once (``</s>`` right after ``<s>``)."""


def save(loaded: LoadedModel, out_dir: str | Path) -> None:
    """Write model (safetensors), generation config and processor (tokenizer, feature
    extractor) to ``out_dir``."""
    loaded.model.save_pretrained(out_dir)
    loaded.processor.save_pretrained(out_dir)
