"""WER/CER and text normalizers: the one place in asrtune where they are computed.

Rates are corpus-level fractions (total errors / total reference units), never means of
per-utterance rates. English text (and any translation, which is English) goes through
Whisper's ``EnglishTextNormalizer``; other languages and text of unknown language through
:func:`normalize_multilingual`, which keeps combining marks (Whisper's
``BasicTextNormalizer`` deletes them and breaks Brahmic scripts) and accents.

A row's language is its own, else the model's sole language (an English-only checkpoint's),
else unknown (:func:`asrtune.evaluation.scoring_languages`): never the model's family, so
the same rows score alike whichever family transcribed them.

Languages written without spaces between words (:data:`NO_SPACE_LANGUAGES`) have no words
to count: their word errors count characters, as Whisper's own evaluation does, and their
headline figure is CER (:func:`headline_metric`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import jiwer

_SPACES = re.compile(r"\s+")
#: Joiners that are part of words (Persian, Indic scripts): kept between kept characters.
_JOINERS = frozenset("\u200c\u200d")
_LOOSE_JOINERS = re.compile(r"(?<!\S)[\u200c\u200d]+|[\u200c\u200d]+(?!\S)")
#: A decimal or thousands separator between digits ("3,5", "1.000"): kept.
_NUMBER_SEPARATOR = re.compile(r"(?<=\d)[.,](?=\d)")

#: Languages written without spaces between words (ISO 639-1 codes, yue: 639-3).
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "km", "bo", "yue"})
#: ISO 639-3 codes of those languages (and of English) as their 639-1 code.
_ISO_639_3 = {
    "zho": "zh", "cmn": "zh", "jpn": "ja", "tha": "th", "lao": "lo", "mya": "my",
    "khm": "km", "bod": "bo", "eng": "en",
}  # fmt: skip


@lru_cache(maxsize=256)
def base_language(language: str | None) -> str | None:
    """The language's code as Whisper names it, lowercased, without region or script:
    "pt-BR" → "pt", "zh_Hant" → "zh", "Chinese" / "mandarin" / "zho" → "zh"."""
    if not language:
        return None
    code = language.strip().lower().replace("_", "-").split("-")[0]
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    return TO_LANGUAGE_CODE.get(code) or _ISO_639_3.get(code) or code or None


def writes_without_spaces(language: str | None) -> bool:
    return base_language(language) in NO_SPACE_LANGUAGES


def headline_metric(languages: Sequence[str | None], task: str = "transcribe") -> str:
    """The figure to report first and choose checkpoints by: "cer" when every row with
    a known language is in a language written without spaces (translations excepted:
    they are English), else "wer"."""
    known = [lang for lang in languages if lang]
    if task == "translate" or not known:
        return "wer"
    return "cer" if all(writes_without_spaces(lang) for lang in known) else "wer"


def normalize_multilingual(text: str) -> str:
    """Casefold, drop punctuation and symbols; keep letters, digits, combining marks,
    zero-width (non-)joiners and separators inside numbers ("3,5")."""
    text = unicodedata.normalize("NFC", text).casefold()
    numbers = {m.start() for m in _NUMBER_SEPARATOR.finditer(text)}
    kept = (
        ch if i in numbers or ch in _JOINERS or unicodedata.category(ch)[0] not in "PSZC" else " "
        for i, ch in enumerate(text)
    )
    return _SPACES.sub(" ", _LOOSE_JOINERS.sub("", "".join(kept))).strip()


@lru_cache(maxsize=1)
def _english_normalizer() -> Callable[[str], str]:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    from asrtune.resources import english_spelling_mapping

    return EnglishTextNormalizer(english_spelling_mapping())


def normalizer_for(language: str | None, task: str = "transcribe") -> Callable[[str], str]:
    """English's normalizer for English (any variant) and for translations (English
    output); the multilingual one for every other language and for an unknown one, which
    must not lose its accents ("Straße über Café")."""
    if task == "translate" or base_language(language) == "en":
        return _english_normalizer()
    return normalize_multilingual


@dataclass(frozen=True)
class ErrorCounts:
    """Edit-distance counts of one or many utterances: ``rate = errors / reference_units``,
    ``errors = substitutions + deletions + insertions``."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_units: int = 0

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_units + other.reference_units,
        )

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

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
        return ErrorCounts(insertions=len(hypothesis.split()))
    out = jiwer.process_words(reference, hypothesis)
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, len(ref_words))


def char_counts(reference: str, hypothesis: str) -> ErrorCounts:
    """Character edit counts; spaces count as characters (jiwer's CER)."""
    if not reference:
        return ErrorCounts(insertions=len(hypothesis))
    out = jiwer.process_characters(reference, hypothesis)
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, len(reference))


def repeats_in_a_loop(
    text: str, min_repeats: int = 4, min_words: int = 8, max_words: int = 10
) -> bool:
    """Whether ``text`` holds a decoding loop: some run of 1 to ``max_words`` words said
    ``min_repeats`` times or more in a row, the repeats covering ``min_words`` words or
    more ("no no no no" is speech; eight of them, or "thank you" four times, is a loop)."""
    words = text.split()
    for n in range(1, max_words + 1):
        needed = max(min_repeats, -(-min_words // n))
        for start in range(len(words) - n * needed + 1):
            gram, count = words[start : start + n], 1
            while words[start + count * n : start + (count + 1) * n] == gram:
                count += 1
            if count >= needed:
                return True
    return False


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
    loop: bool = False  # the hypothesis repeats itself (repeats_in_a_loop)

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "ref": self.reference,
            "hyp": self.hypothesis,
            "ref_normalized": self.reference_normalized,
            "hyp_normalized": self.hypothesis_normalized,
            "wer": self.words.rate,
            "cer": self.chars.rate,
            "loop": self.loop,
        }


def _characters_as_words(text: str) -> str:
    return " ".join(ch for ch in text if not ch.isspace())


def score_utterance(
    utt_id: str,
    reference: str,
    hypothesis: str,
    language: str | None = None,
    task: str = "transcribe",
    capped: bool = False,
) -> UtteranceScore:
    """Normalize both texts for ``language`` (English for translations) and count errors;
    in languages written without spaces each character counts as a word, and spaces
    (which punctuation becomes) are not characters. A hypothesis that repeats itself or
    that decoding cut at the token cap (``capped``) is a loop."""
    normalize = normalizer_for(language, task)
    ref_n, hyp_n = normalize(reference), normalize(hypothesis)
    ref_raw, hyp_raw = reference.strip(), hypothesis.strip()
    ref_chars, hyp_chars = ref_n, hyp_n
    if task != "translate" and writes_without_spaces(language):
        ref_n, hyp_n = _characters_as_words(ref_n), _characters_as_words(hyp_n)
        ref_raw, hyp_raw = _characters_as_words(ref_raw), _characters_as_words(hyp_raw)
        ref_chars, hyp_chars = ref_n.replace(" ", ""), hyp_n.replace(" ", "")
    return UtteranceScore(
        id=utt_id,
        reference=reference,
        hypothesis=hypothesis,
        reference_normalized=ref_n,
        hypothesis_normalized=hyp_n,
        words=word_counts(ref_n, hyp_n),
        chars=char_counts(ref_chars, hyp_chars),
        words_unnormalized=word_counts(ref_raw, hyp_raw),
        loop=capped or repeats_in_a_loop(hyp_n),
    )


@dataclass(frozen=True)
class CorpusScore:
    """Corpus-level rates as fractions (0.123, not 12.3); ``headline`` names the one to
    report first and to choose checkpoints by ("wer" or "cer", see :func:`headline_metric`)."""

    wer: float
    cer: float
    wer_unnormalized: float
    num_samples: int
    reference_words: int
    headline: str = "wer"
    substitutions: int = 0  # word level, corpus totals
    deletions: int = 0
    insertions: int = 0
    loops: int = 0  # hypotheses caught in a decoding loop

    @property
    def headline_rate(self) -> float:
        return self.cer if self.headline == "cer" else self.wer

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def corpus_score(utterances: Sequence[UtteranceScore], headline: str = "wer") -> CorpusScore:
    words = sum((u.words for u in utterances), ErrorCounts())
    chars = sum((u.chars for u in utterances), ErrorCounts())
    raw = sum((u.words_unnormalized for u in utterances), ErrorCounts())
    return CorpusScore(
        wer=words.rate,
        cer=chars.rate,
        wer_unnormalized=raw.rate,
        num_samples=len(utterances),
        reference_words=words.reference_units,
        headline=headline,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        loops=sum(u.loop for u in utterances),
    )


@dataclass(frozen=True)
class NonspeechScore:
    """What a model said on clips without speech (rows whose text is empty): ideally nothing.
    ``words`` counts normalized words (characters in languages written without spaces)."""

    clips: int
    words: int
    clips_with_words: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def nonspeech_score(utterances: Sequence[UtteranceScore]) -> NonspeechScore:
    """Words said on non-speech clips: every word of their hypotheses is an insertion."""
    words = [u.words.insertions for u in utterances]
    return NonspeechScore(len(words), sum(words), sum(count > 0 for count in words))


def is_nonspeech(reference: str) -> bool:
    """A row without text is a non-speech probe (silence, noise): scored apart from WER."""
    return not reference.strip()


def score_corpus(
    references: Sequence[str],
    hypotheses: Sequence[str],
    languages: Sequence[str | None] | None = None,
    ids: Sequence[str] | None = None,
    task: str = "transcribe",
) -> tuple[CorpusScore, list[UtteranceScore]]:
    """Score parallel lists of texts; returns the corpus score of the rows with text and
    one score per utterance (non-speech rows too: see :func:`nonspeech_score`).

    ``languages`` are the rows' languages (None: unknown); with ``task="translate"`` the
    hypotheses and references are English whatever the audio's language. A hypothesis that
    is a :class:`~asrtune.models.Transcript` cut at the token cap counts as a loop.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    languages = languages or [None] * len(references)
    ids = ids or [str(i) for i in range(len(references))]
    scores = [
        score_utterance(i, r, h, lang, task, capped=getattr(h, "capped", False))
        for i, r, h, lang in zip(ids, references, hypotheses, languages, strict=True)
    ]
    speech = [i for i, reference in enumerate(references) if not is_nonspeech(reference)]
    headline = headline_metric([languages[i] for i in speech], task)
    return corpus_score([scores[i] for i in speech], headline), scores
