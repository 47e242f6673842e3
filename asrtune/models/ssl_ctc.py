"""What the self-supervised speech encoders with a CTC head share (wav2vec2 / XLS-R / MMS,
w2v-BERT 2.0, HuBERT, WavLM, data2vec-audio: transformers' ``*ForCTC`` classes):
loading, training items, greedy CTC decoding, a character vocabulary made from the data.

Each family module (``wav2vec2.py``, ``wav2vec2_bert.py``, ``hubert.py``, ``wavlm.py``,
``data2vec_audio.py``) takes the contract's functions from here and states only its model
class, processor class, LoRA targets and defaults. The model is ``model.<base>`` (the
encoder: ``config.base_model_prefix``) + ``model.lm_head`` (a linear layer to the
vocabulary, whose id ``config.pad_token_id`` is the CTC blank).

Inputs differ by feature extractor, and the processor says which (its
``model_input_names[0]``): ``input_values`` (B, samples) raw 16-kHz audio normalized per
utterance (``Wav2Vec2FeatureExtractor``: wav2vec2, HuBERT, WavLM, data2vec-audio; a
convolutional feature encoder makes 50 frames a second of it), or ``input_features``
(B, frames, 160) stacked log-mel frames (``SeamlessM4TFeatureExtractor``: w2v-BERT 2.0,
50 frames a second, no convolutional feature encoder).

Training: an item is one utterance's inputs and its character ids (normalized as its
vocabulary implies, :func:`asrtune.models.ctc_vocabulary.label_text`); the loss is the
model's own CTC loss, which asrtune's trainer sums per utterance (``decoding="ctc"``). The
convolutional feature encoder is frozen at load (as every wav2vec2 recipe does). Nothing
packs (``Capabilities.packing`` off): each item is one utterance, batched by count or
(``--no_pack --max_batch_seconds``) by padded seconds, similar lengths together.

Decoding: greedy by default (frame-wise argmax, frames past each row's length dropped,
repeats collapsed, blanks dropped); audio longer than ``MAX_AUDIO_SECONDS`` in pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrtune.data.audio import SAMPLE_RATE, consecutive_pieces
from asrtune.data.windows import PLAIN_WINDOW, Example, WindowPlan, window_audio
from asrtune.errors import AsrtuneError
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
    weight_options,
)
from asrtune.models.ctc_beam import BeamOptions, beam_search
from asrtune.models.ctc_vocabulary import CharVocabulary, label_text, make_tokenizer
from asrtune.models.family import family_spec
from asrtune.models.kinds.ctc import KIND, ctc_collapse, summed_loss  # noqa: F401 (its kind)
from asrtune.models.parakeet_common import pack_item, packer  # noqa: F401 (the same rule)
from asrtune.transcripts import join_texts

#: Seconds of audio per training item and per decoded piece: self-attention over a whole
#: long file is costly, and the usual fine-tuning clips are under 20 s.
MAX_AUDIO_SECONDS = 30.0
#: LoRA targets: the attention and feed-forward projections of every transformer layer
#: (wav2vec2, HuBERT, WavLM, data2vec-audio) and of every conformer layer (w2v-BERT).
TRANSFORMER_LORA_PATTERN = (
    r".*encoder\.layers\.\d+\.(attention\.(q_proj|k_proj|v_proj|out_proj)"
    r"|feed_forward\.(intermediate_dense|output_dense))"
)
CONFORMER_LORA_PATTERN = (
    r".*encoder\.layers\.\d+\.(self_attn\.(linear_q|linear_k|linear_v|linear_out)"
    r"|ffn[12]\.(intermediate_dense|output_dense))"
)
#: The head a new vocabulary replaces (every ``*ForCTC`` of these families names it so).
HEAD = "lm_head"


def input_key(processor: Any) -> str:
    """``input_values`` or ``input_features``: what the feature extractor makes."""
    extractor = getattr(processor, "feature_extractor", processor)
    return extractor.model_input_names[0]


def tokenizer_of(loaded: LoadedModel) -> Any:
    """The processor's CTC tokenizer; an AsrtuneError for a pretrained-only encoder
    (no tokenizer until ``--new_vocabulary`` makes one)."""
    tokenizer = getattr(loaded.processor, "tokenizer", None)
    if tokenizer is None:
        raise AsrtuneError(
            f"{loaded.source} has no tokenizer (a pretrained-only encoder): train it with "
            "--new_vocabulary, which builds one from the training transcripts"
        )
    return tokenizer


def load_processor(path: str, fallback: str | None = None) -> Any:
    """The processor (feature extractor + ``Wav2Vec2CTCTokenizer``) of ``path``, else of
    ``fallback``; a pretrained-only checkpoint (facebook/wav2vec2-xls-r-300m,
    facebook/w2v-bert-2.0) has only its feature extractor, which is returned alone."""
    from transformers import AutoFeatureExtractor, AutoProcessor

    for source in (path, fallback):
        if source is None:
            continue
        try:
            processor = AutoProcessor.from_pretrained(source)
        except (OSError, ValueError, TypeError):
            continue
        if hasattr(processor, "tokenizer"):
            return processor
    what = "feature extractor (preprocessor_config.json)"
    return processor_from_first(AutoFeatureExtractor.from_pretrained, path, fallback, what)


def freeze_feature_encoder(model: Any) -> None:
    """Freeze the convolutional feature encoder (raw audio → frames), as every wav2vec2
    fine-tuning recipe does; w2v-BERT has none (its features are log-mels)."""
    core = core_model(model)
    if hasattr(core, "freeze_feature_encoder"):
        core.freeze_feature_encoder()


def loader(model_class: str, family: str) -> Callable[..., LoadedModel]:
    """The contract's ``load`` of ``family``: a checkpoint as transformers' ``model_class``,
    its feature encoder frozen."""

    def load(
        name_or_path: str,
        *,
        dtype: torch.dtype | None = None,
        device: str | None = None,
        allow_pickle: bool = False,
        quantization: str | None = None,
    ) -> LoadedModel:
        refuse_quantization(quantization, family)
        import transformers

        model_type = getattr(transformers, model_class)
        label, options = family_spec(family).label, weight_options(dtype, allow_pickle)
        model = from_pretrained(model_type, name_or_path, label, **options)
        freeze_feature_encoder(model)
        if device is not None:
            model.to(device)
        return LoadedModel(model, load_processor(name_or_path), family, name_or_path)

    load.__doc__ = (
        f"Load a {model_class} checkpoint (Hub id or folder), its convolutional feature "
        "encoder frozen. Only safetensors unless ``allow_pickle``; no quantized base."
    )
    return load


def frames_per_second(loaded: LoadedModel) -> float:
    """CTC frames per second of audio (50 for the real models: 20 ms a frame)."""
    core = core_model(loaded.model)
    extractor = getattr(loaded.processor, "feature_extractor", loaded.processor)
    seconds = 10
    if input_key(loaded.processor) == "input_values":
        units = seconds * SAMPLE_RATE
    else:  # 10-ms log-mel frames stacked by the extractor's stride
        units = seconds * 100 // extractor.stride
    frames = core._get_feat_extract_output_lengths(torch.tensor([units]))
    return float(frames[0]) / seconds


def limits(loaded: LoadedModel) -> Limits:
    """:data:`MAX_AUDIO_SECONDS` of audio, and no more characters than CTC frames in that
    much (CTC emits at most one token a frame: 50 a second for the real models)."""
    return Limits(
        max_seconds=MAX_AUDIO_SECONDS,
        max_label_tokens=int(MAX_AUDIO_SECONDS * frames_per_second(loaded)),
    )


def sole_language(loaded: LoadedModel) -> str | None:
    """None: a checkpoint's config does not say its language."""
    return None


def encode_labels(
    loaded: LoadedModel,
    texts: Sequence[str],
    language: str | None,
    task: str,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[int]:
    """The CTC targets of the texts joined by spaces: their characters' ids after the
    normalization the vocabulary implies (:func:`label_text`), spaces as ``|``; a
    character the vocabulary lacks is ``[UNK]`` (the admission rule reports such rows).
    No language (none is input), no ``spans`` (no timestamps)."""
    require_transcribe(task, loaded.spec.label)
    refuse_timestamps(spans is not None, loaded.spec.label)
    tokenizer = tokenizer_of(loaded)
    text = label_text(join_texts(texts), tokenizer.get_vocab())
    ids = text_tokens(loaded, text) if text else []
    return [i for i in ids if i != tokenizer.pad_token_id]


def features(loaded: LoadedModel, audios: Sequence[np.ndarray]) -> Any:
    """The feature extractor's inputs (``input_values`` (B, samples) or ``input_features``
    (B, frames, 160), float32) and ``attention_mask`` for (n_samples,) 16-kHz arrays,
    right-padded."""
    extractor = getattr(loaded.processor, "feature_extractor", loaded.processor)
    return extractor(
        [np.asarray(a, dtype=np.float32) for a in audios],
        sampling_rate=SAMPLE_RATE,
        return_attention_mask=True,
        padding=True,
        return_tensors="pt",
    )


def window_item(
    loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = PLAIN_WINDOW
) -> dict[str, Any]:
    """One training item: ``{input_key: (samples,) or (frames, 160) float32, "labels":
    list[int]}`` of the window's audio (one utterance: nothing packs) and its texts'
    targets (:func:`encode_labels`). Never with timestamps."""
    refuse_timestamps(plan.timestamps, loaded.spec.label)
    audio, _ = window_audio(window, plan)
    texts = [ex.row.text for ex in window if ex.row.text]
    key = input_key(loaded.processor)
    inputs = features(loaded, [audio])
    length = int(inputs["attention_mask"][0].sum())
    return {
        key: inputs[key][0, :length],
        "labels": encode_labels(loaded, texts, window[0].language, task),
    }


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch of training items.

    Returns the items' inputs padded with zeros (``input_values`` (B, S) or
    ``input_features`` (B, F, 160) float32), ``attention_mask`` (B, S or F) int64, 0 on
    padding, and ``labels`` (B, U) int64, -100 after each row's targets (the CTC loss masks
    -100 out, the trainer counts label tokens by it).
    """
    key = "input_values" if "input_values" in features[0] else "input_features"
    arrays = [torch.as_tensor(f[key], dtype=torch.float32) for f in features]
    longest = max(a.shape[0] for a in arrays)
    inputs = torch.zeros((len(arrays), longest, *arrays[0].shape[1:]), dtype=torch.float32)
    attention_mask = torch.zeros((len(arrays), longest), dtype=torch.long)
    most_labels = max(1, max(len(f["labels"]) for f in features))
    labels = torch.full((len(arrays), most_labels), -100, dtype=torch.long)
    for i, (array, item) in enumerate(zip(arrays, features, strict=True)):
        inputs[i, : array.shape[0]] = array
        attention_mask[i, : array.shape[0]] = 1
        labels[i, : len(item["labels"])] = torch.tensor(item["labels"], dtype=torch.long)
    return {key: inputs, "attention_mask": attention_mask, "labels": labels}


def ctc_log_probs(
    core: Any, inputs: torch.Tensor, attention_mask: torch.Tensor, key: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, V) float32 log-probabilities of each CTC frame and (B,) the frames of each
    row (the model's own output lengths for its unpadded input)."""
    logits = core(**{key: inputs}, attention_mask=attention_mask).logits.float()
    lengths = core._get_feat_extract_output_lengths(attention_mask.sum(-1)).long()
    return torch.log_softmax(logits, dim=-1), lengths.clamp(max=logits.shape[1])


def greedy_pieces(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int) -> list[list[int]]:
    """Greedy CTC of each row: the argmax of its first ``lengths[i]`` frames, collapsed."""
    best = log_probs.argmax(-1).tolist()
    return [ctc_collapse(row[:n], blank) for row, n in zip(best, lengths.tolist(), strict=True)]


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
    """Transcribe a batch of (n_samples,) 16-kHz arrays of any length: greedy CTC.

    Each array is cut into consecutive pieces of at most ``MAX_AUDIO_SECONDS``, all pieces
    run in one batch and each array's texts are joined with spaces. ``num_beams`` and
    ``language`` are ignored (greedy; no language input; beam search with hotwords:
    :func:`generate_boosted`). ``max_new_tokens`` caps each transcript's characters (then
    it is ``capped``).
    """
    require_transcribe(task, loaded.spec.label)
    tokenizer = tokenizer_of(loaded)
    log_probs, lengths, cut = _piece_log_probs(loaded, audios, precision)
    blank = core_model(loaded.model).config.pad_token_id
    pieces = greedy_pieces(log_probs, lengths, blank)
    out: list[Transcript] = []
    position = 0
    for row in cut:
        ids = [token for piece in pieces[position : position + len(row)] for token in piece]
        position += len(row)
        capped = max_new_tokens is not None and len(ids) > max_new_tokens
        if capped:
            ids = ids[:max_new_tokens]
        # token by token: the collapse is done (a real double letter stays)
        text = tokenizer.decode(ids, skip_special_tokens=True, group_tokens=False)
        out.append(Transcript(" ".join(text.split()), capped))
    return out


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
    """:func:`generate` by CTC prefix beam search (:func:`asrtune.models.ctc_beam.beam_search`,
    ``max(num_beams, 16)`` prefixes) that favours the spellings of ``hotwords`` while a word
    being written starts one of them. No hotwords: exactly :func:`generate`."""
    if not hotwords:
        return generate(loaded, audios, language, task, num_beams, max_new_tokens, precision)
    require_transcribe(task, loaded.spec.label)
    tokenizer = tokenizer_of(loaded)
    log_probs, lengths, cut = _piece_log_probs(loaded, audios, precision)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    options = BeamOptions(beam_width=max(num_beams, 16), hotwords=tuple(hotwords))
    blank = core_model(loaded.model).config.pad_token_id
    texts = [
        beam_search(rows[:n].numpy(), tokens, blank, options, tokenizer.word_delimiter_token)
        for rows, n in zip(log_probs, lengths.tolist(), strict=True)
    ]
    out: list[Transcript] = []
    position = 0
    for row in cut:
        text = " ".join(" ".join(texts[position : position + len(row)]).split())
        position += len(row)
        capped = max_new_tokens is not None and len(text) > max_new_tokens
        out.append(Transcript(text[:max_new_tokens] if capped else text, capped))
    return out


def _piece_log_probs(
    loaded: LoadedModel, audios: Sequence[np.ndarray], precision: str
) -> tuple[torch.Tensor, torch.Tensor, list[list[np.ndarray]]]:
    """(P, T, V) CTC log-probabilities and (P,) frame counts of every piece of at most
    ``MAX_AUDIO_SECONDS`` of ``audios``, in one batch, and the pieces of each array."""
    cut = [consecutive_pieces(a, MAX_AUDIO_SECONDS) for a in audios]
    key = input_key(loaded.processor)
    inputs = features(loaded, [piece for row in cut for piece in row])
    model, core = loaded.model, core_model(loaded.model)
    param = next(model.parameters())
    with inference_precision(model, precision):
        log_probs, lengths = ctc_log_probs(
            core,
            inputs[key].to(param.device, param.dtype),
            inputs["attention_mask"].to(param.device),
            key,
        )
    return log_probs.cpu(), lengths.cpu(), cut


def lora_targets(pattern: str, freeze_encoder: bool) -> list[str] | str:
    """The family's encoder ``pattern`` (a regex of its attention and feed-forward
    projections); with a frozen encoder only the CTC head trains, and LoRA names it."""
    return [HEAD] if freeze_encoder else pattern


def freeze_encoder(model: torch.nn.Module) -> None:
    """Freeze the whole encoder (``model.<base_model_prefix>``): only the CTC head trains."""
    core = core_model(model)
    getattr(core, core.base_model_prefix).requires_grad_(False)


def allow_empty_transcripts(loaded: LoadedModel) -> None:
    """Nothing to do: a CTC model says nothing when every frame is blank."""


def save(loaded: LoadedModel, out_dir: str | Path) -> None:
    """Write the model (safetensors) and its processor (tokenizer + feature extractor)."""
    loaded.model.save_pretrained(out_dir)
    loaded.processor.save_pretrained(out_dir)


def use_vocabulary(
    loaded: LoadedModel, vocabulary: CharVocabulary, folder: str | Path
) -> list[str]:
    """Give ``loaded`` a new character vocabulary: a ``Wav2Vec2CTCTokenizer`` over it
    (``vocab.json`` written to ``folder``) in the family's processor with the checkpoint's
    feature extractor, and a new CTC head (``lm_head``: a linear layer from the encoder's
    output to ``vocabulary.size`` ids, initialized as transformers initializes it) with
    ``config.vocab_size``, ``pad_token_id`` (``[PAD]``, the blank) and
    ``ctc_zero_infinity`` (an utterance with fewer frames than characters adds no loss,
    not infinity) set. Returns the names of the new modules (what LoRA must train whole)."""
    import transformers

    tokenizer = make_tokenizer(vocabulary, folder)
    extractor = getattr(loaded.processor, "feature_extractor", loaded.processor)
    processor_class = getattr(transformers, loaded.adapter.PROCESSOR_CLASS)
    loaded.processor = processor_class(feature_extractor=extractor, tokenizer=tokenizer)
    core = core_model(loaded.model)
    old = getattr(core, HEAD)
    head = torch.nn.Linear(old.in_features, vocabulary.size, device=old.weight.device)
    head.to(old.weight.dtype)
    core._init_weights(head)
    setattr(core, HEAD, head)
    core.config.vocab_size = vocabulary.size
    core.config.pad_token_id = tokenizer.pad_token_id
    core.config.ctc_zero_infinity = True
    return [HEAD]


def train_language_adapter(loaded: LoadedModel, lang: str) -> None:
    """MMS-style adapter training (``--target_lang``): the attention adapters of every
    layer (``config.adapter_attn_dim``, as in facebook/mms-1b-all) and the CTC head
    re-initialized, and nothing else trains (transformers' ``init_adapter_layers`` and
    ``freeze_base_model``, as MMS's fine-tuning recipe). ``config.target_lang`` is set."""
    core = core_model(loaded.model)
    if getattr(core.config, "adapter_attn_dim", None) is None:
        raise AsrtuneError(
            f"--target_lang {lang}: {loaded.source} has no language adapters "
            "(config.adapter_attn_dim; facebook/mms-1b-all has them)"
        )
    core.init_adapter_layers()
    core.freeze_base_model()
    for param in core._get_adapters().values():
        param.requires_grad_(True)
    core.config.target_lang = lang


def save_language_adapter(loaded: LoadedModel, folder: str | Path, lang: str) -> Path:
    """Write the adapters and head as MMS ships them: ``folder/adapter.<lang>.safetensors``
    (what ``Wav2Vec2ForCTC.load_adapter(lang)`` reads)."""
    from safetensors.torch import save_file

    core = core_model(loaded.model)
    weights = {k: v.detach().cpu().contiguous() for k, v in core._get_adapters().items()}
    path = Path(folder) / f"adapter.{lang}.safetensors"
    save_file(weights, str(path), metadata={"format": "pt"})
    return path
