"""Transcribe with an exported Whisper folder (ct2 or onnx) the way asrtune runs transformers.

Used by the export parity check (:mod:`asrtune.publish.parity`). The exported folder's own
files are used: log-mel features from its ``preprocessor_config.json`` (30-s windows, as
:func:`asrtune.models.whisper.window_features` computes them for transformers), weights
from ``model.bin`` or the ONNX graphs, text from its ``tokenizer.json``. The decoding
settings come from the transformers model it was exported from (``loaded``): the decoder
prompt (``<|startoftranscript|>`` [, language, task], ``<|notimestamps|>``), greedy search and
the same cap on new tokens, so a faithful export gives the same hypotheses.

Each ``transcribe_*`` function takes (n_samples,) float32 16-kHz clips of at most one
30-s window and returns one :class:`~asrtune.models.Transcript` per clip, ``capped`` when
decoding ran into the token cap without ending.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asrtune.data.audio import SAMPLE_RATE
from asrtune.errors import AsrtuneError
from asrtune.inference import decoding_batches
from asrtune.models import LoadedModel, Transcript

EOT = "<|endoftext|>"
BATCH_SIZE = 8  # clips per decoder call

# (B, n_mels, frames) features, prompt ids, max new tokens → new ids per clip (EOS kept)
BatchDecoder = Callable[[np.ndarray, list[int], int], list[list[int]]]


def transformers_token_cap(loaded: LoadedModel, requested: int, prompt_length: int) -> int:
    """New tokens transformers lets asrtune's Whisper ``generate`` produce for ``requested``.

    asrtune passes ``max_length = min(requested, positions - 4) + 4``; Whisper's generate
    in transformers 5 counts that many tokens after the decoder prompt, up to the
    decoder's ``max_target_positions`` (checked against transformers 5.24 by the parity
    tests, which compare capped hypotheses token for token).
    """
    positions = loaded.model.config.max_target_positions
    return min(min(requested, positions - 4) + 4, positions - prompt_length)


def decoder_prompt(loaded: LoadedModel, language: str | None, task: str) -> list[int]:
    """``<|startoftranscript|>`` and the adapter's prefix (language, task, no timestamps)."""
    return [
        loaded.model.config.decoder_start_token_id,
        *loaded.adapter.label_prefix(loaded, language, task),
    ]


def _tokenizer(folder: Path) -> Any:
    """transformers' WhisperTokenizer from the folder's tokenizer.json."""
    from transformers import WhisperTokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise AsrtuneError(f"{folder} has no tokenizer.json")
    specials = {name: EOT for name in ("unk_token", "bos_token", "eos_token", "pad_token")}
    return WhisperTokenizer(tokenizer_file=str(path), **specials)


def _features(folder: Path, audios: Sequence[np.ndarray]) -> np.ndarray:
    """(B, n_mels, frames) float32 log-mel of one 30-s window per clip."""
    from transformers import WhisperFeatureExtractor

    from asrtune.models.whisper import window_features

    if not (folder / "preprocessor_config.json").is_file():
        raise AsrtuneError(f"{folder} has no preprocessor_config.json")
    extractor = WhisperFeatureExtractor.from_pretrained(str(folder))
    if max(len(a) for a in audios) > extractor.n_samples:
        raise AsrtuneError("the exported-model check takes clips of at most one 30-s window")
    features, _ = window_features(extractor, audios)
    return features.numpy().astype(np.float32)


def _transcribe(
    loaded: LoadedModel,
    folder: Path,
    audios: Sequence[np.ndarray],
    languages: Sequence[str | None],
    task: str,
    requested: int,
    decode: BatchDecoder,
) -> list[Transcript]:
    """Batches of one language → ``decode`` → texts cut at the transformers token cap."""
    tokenizer = _tokenizer(folder)
    eos = tokenizer.convert_tokens_to_ids(EOT)
    texts: list[Transcript] = [Transcript("")] * len(audios)
    seconds = [len(audio) / SAMPLE_RATE for audio in audios]  # all within one window
    for batch in decoding_batches(seconds, languages, BATCH_SIZE, math.inf):
        prompt = decoder_prompt(loaded, languages[batch[0]], task)
        cap = transformers_token_cap(loaded, requested, len(prompt))
        new_ids = decode(_features(folder, [audios[i] for i in batch]), prompt, cap)
        for index, ids in zip(batch, new_ids, strict=True):
            ids = ids[:cap]
            ended = eos in ids
            ids = ids[: ids.index(eos)] if ended else ids
            text = tokenizer.decode([*prompt, *ids], skip_special_tokens=True).strip()
            texts[index] = Transcript(text, capped=not ended and len(ids) >= cap)
    return texts


def transcribe_ct2(
    loaded: LoadedModel,
    folder: Path,
    audios: Sequence[np.ndarray],
    languages: Sequence[str | None],
    task: str,
    requested: int,
) -> list[Transcript]:
    """Greedy decoding with ctranslate2 on the CPU, in the folder's own weight type."""
    import ctranslate2

    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="default")

    def decode(features: np.ndarray, prompt: list[int], cap: int) -> list[list[int]]:
        # ctranslate2 4.x Whisper generates at most max_length // 2 new tokens (measured);
        # asking for twice the cap and cutting keeps greedy results the same either way
        results = model.generate(
            ctranslate2.StorageView.from_array(features),
            [prompt] * len(features),
            beam_size=1,
            max_length=2 * cap,
        )
        return [list(result.sequences_ids[0]) for result in results]

    return _transcribe(loaded, folder, audios, languages, task, requested, decode)


def transcribe_onnx(
    loaded: LoadedModel,
    folder: Path,
    audios: Sequence[np.ndarray],
    languages: Sequence[str | None],
    task: str,
    requested: int,
) -> list[Transcript]:
    """Greedy decoding of the encoder and decoder graphs with onnxruntime (CPU)."""
    from asrtune.publish.onnx import greedy_decode

    def decode(features: np.ndarray, prompt: list[int], cap: int) -> list[list[int]]:
        rows = greedy_decode(folder, features, prompt, max_length=len(prompt) + cap)
        return [row[len(prompt) :] for row in rows]

    return _transcribe(loaded, folder, audios, languages, task, requested, decode)
