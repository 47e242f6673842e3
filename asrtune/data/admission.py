"""One admission rule: can a row be trained on a model? → its Example, or the reason why not.

``asrtune data check`` and the UI's check (:func:`asrtune.data.validate.validate_rows`),
finite training and ``--streaming`` (:mod:`asrtune.training_data`) all decide with
:func:`admit`, so they leave out the same rows in the same words. It checks, in order:

1. text: an empty text is invalid, except in an evaluation set, where the row is a
   non-speech probe (and no model check applies);
2. audio: what a full decode found wrong (``audio_problem``, see
   :func:`asrtune.data.validate.check_audio`) makes the row invalid; a row whose duration
   is not measured yet (streaming) has it read from the file's header here;
3. language: one the model knows (a multilingual Whisper needs one): else invalid;
4. unknown tokens: labels holding the tokenizer's unknown token (a character its
   vocabulary lacks: another script, a casing) leave the row out, unless
   ``allow_unknown_tokens`` (``--allow_unknown_tokens``) keeps it, with a note;
5. limits: seconds of audio and label tokens (timestamp tokens included) within the
   model's limits.

Invalid rows (1-3) are broken data: training stops on them unless ``--drop_invalid``.
Rows left out (4-5) are valid but not for this model: training lists them in
OUT/skipped.jsonl and ``data check`` under "over the model's limits".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from asrtune.data.audio import audio_duration
from asrtune.data.manifest import Row
from asrtune.errors import AsrtuneError

if TYPE_CHECKING:
    from asrtune.data.windows import Example

EMPTY_TEXT = "empty text (allowed in evaluation sets only)"
UNKNOWN_TOKENS = "unknown token(s)"  # in every reason and note about unknown tokens


@dataclass(frozen=True)
class Refusal:
    """Why a row cannot be trained: ``invalid`` when its data is broken (text, audio) or
    its language is not one the model knows (``language``: a flag or column to fix, which
    streaming training stops on), else it is valid but this model cannot take it (unknown
    tokens, limits)."""

    reason: str
    invalid: bool = False
    language: bool = False


@dataclass(frozen=True)
class Admitted:
    """An admitted row (with its measured duration), its label token count (0 without a
    model, or for a non-speech probe) and what it was admitted despite (``notes``: unknown
    tokens kept by ``allow_unknown_tokens``)."""

    row: Row
    num_tokens: int = 0
    notes: tuple[str, ...] = ()

    @property
    def example(self) -> Example:
        """The training example of the row."""
        from asrtune.data.windows import Example  # windows imports torch: only for training

        return Example(self.row, self.row.language, self.num_tokens)


class RowFit(Protocol):
    """What a row must fit to be trained on a model (its languages, vocabulary and limits),
    as :class:`asrtune.models.fit.ModelFit` implements it for a loaded model: data/ decides
    with it without importing any model code."""

    allow_unknown_tokens: bool

    @property
    def tokenizer(self) -> Any: ...

    def labels(self, row: Row) -> list[int]:
        """``row``'s label tokens; AsrtuneError for a language the model does not know."""
        ...

    def unknown_note(self, text: str, labels: list[int]) -> str | None:
        """What is wrong with labels holding the unknown token, or None."""
        ...

    def limit_reason(self, seconds: float, num_tokens: int) -> str | None:
        """Why a row of ``seconds`` and ``num_tokens`` label tokens is over the limits."""
        ...


def admit(
    row: Row,
    fit: RowFit | None = None,
    *,
    audio_problem: str | None = None,
    nonspeech_ok: bool = False,
) -> Admitted | Refusal:
    """Whether ``row`` can be trained on ``fit``'s model (the module docstring's checks in
    order; without ``fit`` only the text and audio ones).

    ``audio_problem``: what a full decode of the row's audio found wrong (None: nothing,
    or not decoded); ``nonspeech_ok``: an evaluation set, where an empty text makes a
    non-speech probe. Returns the :class:`Admitted` row (with a duration in seconds; its
    training ``example``) or a :class:`Refusal`.
    """
    text = (row.text or "").strip()
    if not text and not nonspeech_ok:
        return Refusal(EMPTY_TEXT, invalid=True)
    if audio_problem:
        return Refusal(audio_problem, invalid=True)
    if row.duration is None:
        try:
            row = replace(row, duration=audio_duration(row.audio_path, row.audio_bytes))
        except AsrtuneError as exc:
            return Refusal(f"unreadable audio: {exc}", invalid=True)
    if not text or fit is None:
        return Admitted(row)
    try:
        labels = fit.labels(row)
    except AsrtuneError as exc:  # a language the model does not know, or none
        return Refusal(str(exc), invalid=True, language=True)
    notes: tuple[str, ...] = ()
    unknown = fit.unknown_note(text, labels)
    if unknown and not fit.allow_unknown_tokens:
        return Refusal(f"{unknown} (--allow_unknown_tokens keeps such rows)")
    if unknown:
        notes = (f"{unknown}; kept (--allow_unknown_tokens)",)
    reason = fit.limit_reason(row.duration, len(labels))
    if reason:
        return Refusal(reason)
    return Admitted(row, len(labels), notes)
