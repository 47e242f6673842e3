"""WER/CER and text normalizers: the one place in asrtune where they are computed.

Rates are corpus-level fractions (total errors / total reference units), never means of
per-utterance rates. English text goes through Whisper's ``EnglishTextNormalizer``; other
languages through :func:`normalize_multilingual`, which keeps combining marks (Whisper's
``BasicTextNormalizer`` deletes them and breaks Brahmic scripts).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import jiwer

_SPACES = re.compile(r"\s+")


def normalize_multilingual(text: str) -> str:
    """Casefold, drop punctuation and symbols, keep letters, digits and combining marks."""
    text = unicodedata.normalize("NFC", text).casefold()
    kept = (" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return _SPACES.sub(" ", "".join(kept)).strip()


@lru_cache(maxsize=1)
def _english_normalizer() -> Callable[[str], str]:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    from asrtune.resources import english_spelling_mapping

    return EnglishTextNormalizer(english_spelling_mapping())


def normalizer_for(language: str | None) -> Callable[[str], str]:
    """The normalizer for a language code; None and English variants get the English one."""
    if language is None or language.lower().split("-")[0].split("_")[0] in ("en", "english"):
        return _english_normalizer()
    return normalize_multilingual


@dataclass(frozen=True)
class ErrorCounts:
    """Edit-distance counts of one or many utterances: ``rate = errors / reference_units``."""

    errors: int = 0
    reference_units: int = 0

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(self.errors + other.errors, self.reference_units + other.reference_units)

    @property
    def rate(self) -> float:
        """Errors per reference unit; an empty reference counts every inserted unit as 1."""
        if self.reference_units == 0:
            return float(self.errors > 0)
        return self.errors / self.reference_units


def word_counts(reference: str, hypothesis: str) -> ErrorCounts:
    """Substitutions + deletions + insertions over whitespace-separated words."""
    ref_words = reference.split()
    if not ref_words:
        return ErrorCounts(len(hypothesis.split()), 0)
    out = jiwer.process_words(reference, hypothesis)
    return ErrorCounts(out.substitutions + out.deletions + out.insertions, len(ref_words))


def char_counts(reference: str, hypothesis: str) -> ErrorCounts:
    """Character edit counts; spaces count as characters (jiwer's CER)."""
    if not reference:
        return ErrorCounts(len(hypothesis), 0)
    out = jiwer.process_characters(reference, hypothesis)
    return ErrorCounts(out.substitutions + out.deletions + out.insertions, len(reference))


@dataclass(frozen=True)
class UtteranceScore:
    """One utterance's texts (raw and normalized) and its normalized word/char counts."""

    id: str
    reference: str
    hypothesis: str
    reference_normalized: str
    hypothesis_normalized: str
    words: ErrorCounts
    chars: ErrorCounts
    words_unnormalized: ErrorCounts

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "ref": self.reference,
            "hyp": self.hypothesis,
            "ref_normalized": self.reference_normalized,
            "hyp_normalized": self.hypothesis_normalized,
            "wer": self.words.rate,
            "cer": self.chars.rate,
        }


def score_utterance(
    utt_id: str, reference: str, hypothesis: str, language: str | None = None
) -> UtteranceScore:
    normalize = normalizer_for(language)
    ref_n, hyp_n = normalize(reference), normalize(hypothesis)
    return UtteranceScore(
        id=utt_id,
        reference=reference,
        hypothesis=hypothesis,
        reference_normalized=ref_n,
        hypothesis_normalized=hyp_n,
        words=word_counts(ref_n, hyp_n),
        chars=char_counts(ref_n, hyp_n),
        words_unnormalized=word_counts(reference.strip(), hypothesis.strip()),
    )


@dataclass(frozen=True)
class CorpusScore:
    """Corpus-level rates as fractions (0.123, not 12.3)."""

    wer: float
    cer: float
    wer_unnormalized: float
    num_samples: int
    reference_words: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def corpus_score(utterances: Sequence[UtteranceScore]) -> CorpusScore:
    words = sum((u.words for u in utterances), ErrorCounts())
    chars = sum((u.chars for u in utterances), ErrorCounts())
    raw = sum((u.words_unnormalized for u in utterances), ErrorCounts())
    return CorpusScore(
        wer=words.rate,
        cer=chars.rate,
        wer_unnormalized=raw.rate,
        num_samples=len(utterances),
        reference_words=words.reference_units,
    )


def score_corpus(
    references: Sequence[str],
    hypotheses: Sequence[str],
    languages: Sequence[str | None] | None = None,
    ids: Sequence[str] | None = None,
) -> tuple[CorpusScore, list[UtteranceScore]]:
    """Score parallel lists of texts; returns the corpus score and one score per utterance."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    languages = languages or [None] * len(references)
    ids = ids or [str(i) for i in range(len(references))]
    scores = [
        score_utterance(i, r, h, lang)
        for i, r, h, lang in zip(ids, references, hypotheses, languages, strict=True)
    ]
    return corpus_score(scores), scores
