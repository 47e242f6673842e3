"""Domain terms: a user's list of words that matter, and how many of them a model got right.

Term file (UTF-8), one term per line; blank lines and lines starting with ``#`` are skipped::

    Kubernetes
    New York City
    PostgreSQL<TAB>Postgres|Postgre SQL

A term may have several words. After a tab come alternative spellings that count as the
same term, separated by ``|`` or by further tabs.

Matching uses the normalizer that WER uses for the row's language
(:func:`asrtune.metrics.normalizer_for`) on the term and on both texts, and compares whole
tokens: words, or characters in languages written without spaces
(:func:`asrtune.metrics.writes_without_spaces`), so "cat" is not found in "category".
Each spelling of a term counts; occurrences do not overlap.

Per utterance and term, with ``ref`` and ``hyp`` occurrences in the reference and in the
hypothesis: ``recognized = min(ref, hyp)`` and ``false_alarms = max(0, hyp - ref)``. Counting
instead of requiring the exact aligned position keeps a term that the model heard but placed a
word earlier or later (alignment around errors is arbitrary) and never counts one hypothesis
occurrence twice. ``misrecognized_as`` lists what the hypothesis has where jiwer's word
alignment puts a missed reference occurrence: the words between those aligned to the
reference words around it ("" when the model said nothing there).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jiwer

from asrtune.errors import AsrtuneError
from asrtune.metrics import normalizer_for, writes_without_spaces

_ALTERNATIVE_SEPARATORS = re.compile(r"[\t|]")
Span = tuple[int, int]  # token indices [start, end)


@dataclass(frozen=True)
class Term:
    """A term as the user wrote it and its alternative spellings."""

    term: str
    alternatives: tuple[str, ...] = ()

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.term, *self.alternatives)


@dataclass(frozen=True)
class TermList:
    """The terms of one term file, in file order; ``source`` names the file."""

    terms: tuple[Term, ...]
    source: str = ""


def parse_terms(lines: Iterable[str], source: str = "terms") -> TermList:
    """Terms from the lines of a term file (see the module docstring for the format).

    Raises :class:`AsrtuneError` when a term is listed twice or when there is no term.
    """
    terms: list[Term] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        line = line.lstrip("\ufeff").rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        term, _, rest = line.partition("\t")
        term = term.strip()
        if not term:
            raise AsrtuneError(f"{source}, line {number}: a term is missing before the tab")
        key = term.casefold()
        if key in first_line:
            raise AsrtuneError(
                f"{source}, line {number}: term {term!r} is already on line {first_line[key]}"
            )
        first_line[key] = number
        alternatives = (a.strip() for a in _ALTERNATIVE_SEPARATORS.split(rest))
        terms.append(Term(term, tuple(dict.fromkeys(a for a in alternatives if a))))
    if not terms:
        raise AsrtuneError(f"{source} has no terms (one term per line)")
    return TermList(tuple(terms), source)


def read_terms(path: str | Path) -> TermList:
    """The terms of the term file at ``path``; a one-line :class:`AsrtuneError` when the file
    is missing, unreadable or holds no term."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AsrtuneError(f"term file {path} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise AsrtuneError(f"cannot read term file {path}: {error}") from None
    return parse_terms(text.splitlines(), str(path))


def tokens(text: str, language: str | None, task: str = "transcribe") -> tuple[str, ...]:
    """``text`` as WER sees it: normalized for ``language`` and split into words, or into
    characters in languages written without spaces."""
    normalized = normalizer_for(language, task)(text)
    if task != "translate" and writes_without_spaces(language):
        return tuple(ch for ch in normalized if not ch.isspace())
    return tuple(normalized.split())


@lru_cache(maxsize=4096)
def spelling_tokens(term: Term, language: str | None, task: str) -> tuple[tuple[str, ...], ...]:
    """The term's spellings as tokens, longest first (those that normalize to nothing dropped)."""
    spelled = {tokens(s, language, task) for s in term.spellings}
    return tuple(sorted((s for s in spelled if s), key=len, reverse=True))


def find_occurrences(words: Sequence[str], spellings: Sequence[tuple[str, ...]]) -> list[Span]:
    """Non-overlapping spans of ``words`` equal to one of ``spellings`` (the longest wins)."""
    spans: list[Span] = []
    start = 0
    while start < len(words):
        for spelling in spellings:
            end = start + len(spelling)
            if tuple(words[start:end]) == spelling:
                spans.append((start, end))
                start = end
                break
        else:
            start += 1
    return spans


def aligned_spans(reference: Sequence[str], hypothesis: Sequence[str]) -> list[Span]:
    """For each reference token, the hypothesis span jiwer's alignment puts at its place:
    one token for an equal or substituted word, an empty span for a deleted one."""
    chunks = jiwer.process_words(" ".join(reference), " ".join(hypothesis)).alignments[0]
    places: list[Span] = []
    for chunk in chunks:
        for offset in range(chunk.ref_end_idx - chunk.ref_start_idx):
            if chunk.type == "delete":
                places.append((chunk.hyp_start_idx, chunk.hyp_start_idx))
            else:
                hyp = chunk.hyp_start_idx + offset
                places.append((hyp, hyp + 1))
    return places


def heard_at(span: Span, places: Sequence[Span], hypothesis: Sequence[str], joiner: str) -> str:
    """What the hypothesis says between the places of the reference words around ``span``:
    the aligned words and the words inserted before, inside and after them."""
    start = places[span[0] - 1][1] if span[0] > 0 else 0
    end = places[span[1]][0] if span[1] < len(places) else len(hypothesis)
    return joiner.join(hypothesis[start:end])


@dataclass(frozen=True)
class RowTerms:
    """One utterance's terms, each listed once per occurrence: recognized, missed, and said
    in the hypothesis beyond the reference's count (false alarms)."""

    found: tuple[str, ...] = ()
    missed: tuple[str, ...] = ()
    false_alarms: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "found": list(self.found),
            "missed": list(self.missed),
            "false_alarms": list(self.false_alarms),
        }


@dataclass(frozen=True)
class TermCount:
    """One term over a corpus; ``misrecognized_as`` holds what missed occurrences were heard
    as, most frequent first ("" = nothing was said there)."""

    term: str
    occurrences: int = 0
    recognized: int = 0
    false_alarms: int = 0
    misrecognized_as: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "term": self.term,
            "occurrences": self.occurrences,
            "recognized": self.recognized,
            "false_alarms": self.false_alarms,
            "misrecognized_as": list(self.misrecognized_as),
        }


@dataclass(frozen=True)
class TermScore:
    """Term recognition over a corpus: totals, one :class:`TermCount` per term (file order)
    and one :class:`RowTerms` per utterance (input order)."""

    occurrences: int
    recognized: int
    false_alarms: int
    per_term: tuple[TermCount, ...]
    rows: tuple[RowTerms, ...] = field(default=(), repr=False)

    @property
    def recall(self) -> float | None:
        """Recognized / reference occurrences; None when no reference has a term."""
        return self.recognized / self.occurrences if self.occurrences else None

    def as_dict(self) -> dict:
        return {
            "occurrences": self.occurrences,
            "recognized": self.recognized,
            "recall": self.recall,
            "false_alarms": self.false_alarms,
            "per_term": [t.as_dict() for t in self.per_term],
        }

    def summary(self) -> str:
        """One line: recall and false alarms."""
        recall = "n/a" if self.recall is None else f"{self.recall:.1%}"
        return (
            f"term recall {recall} ({self.recognized}/{self.occurrences}), "
            f"false alarms {self.false_alarms}"
        )


@dataclass
class _Tally:
    occurrences: int = 0
    recognized: int = 0
    false_alarms: int = 0
    heard: Counter[str] = field(default_factory=Counter)

    def count(self, term: str) -> TermCount:
        heard = tuple(text for text, _ in self.heard.most_common())
        return TermCount(term, self.occurrences, self.recognized, self.false_alarms, heard)


def _score_row(
    terms: TermList,
    reference: str,
    hypothesis: str,
    language: str | None,
    task: str,
    tallies: list[_Tally],
) -> RowTerms:
    ref, hyp = tokens(reference, language, task), tokens(hypothesis, language, task)
    joiner = "" if task != "translate" and writes_without_spaces(language) else " "
    found: list[str] = []
    missed: list[str] = []
    alarms: list[str] = []
    places: list[Span] | None = None
    for term, tally in zip(terms.terms, tallies, strict=True):
        spellings = spelling_tokens(term, language, task)
        in_ref, in_hyp = find_occurrences(ref, spellings), find_occurrences(hyp, spellings)
        recognized = min(len(in_ref), len(in_hyp))
        tally.occurrences += len(in_ref)
        tally.recognized += recognized
        tally.false_alarms += max(0, len(in_hyp) - len(in_ref))
        found += [term.term] * recognized
        missed += [term.term] * (len(in_ref) - recognized)
        alarms += [term.term] * max(0, len(in_hyp) - len(in_ref))
        if recognized < len(in_ref):
            places = places if places is not None else aligned_spans(ref, hyp)
            heard = [heard_at(span, places, hyp, joiner) for span in in_ref]
            spelled = {joiner.join(s) for s in spellings}
            tally.heard.update([h for h in heard if h not in spelled][: len(in_ref) - recognized])
    return RowTerms(tuple(found), tuple(missed), tuple(alarms))


def score_terms(
    terms: TermList,
    references: Sequence[str],
    hypotheses: Sequence[str],
    languages: Sequence[str | None] | None = None,
    task: str = "transcribe",
) -> TermScore:
    """Count ``terms`` in parallel references and hypotheses (row languages as in
    :func:`asrtune.metrics.score_corpus`; None: unknown)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    languages = languages or [None] * len(references)
    tallies = [_Tally() for _ in terms.terms]
    rows = tuple(
        _score_row(terms, reference, hypothesis, language, task, tallies)
        for reference, hypothesis, language in zip(references, hypotheses, languages, strict=True)
    )
    return TermScore(
        occurrences=sum(t.occurrences for t in tallies),
        recognized=sum(t.recognized for t in tallies),
        false_alarms=sum(t.false_alarms for t in tallies),
        per_term=tuple(t.count(term.term) for term, t in zip(terms.terms, tallies, strict=True)),
        rows=rows,
    )


# ----- sentences that hold a term (for speech synthesis and phrases to record) ---------------

#: Neutral carrier sentences per language (primary subtag); ``{term}`` is replaced by the term.
CARRIER_SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "Please write down {term} before the meeting.",
        "I heard about {term} again this morning.",
        "Can you tell me more about {term}?",
        "We talked about {term} for a while yesterday.",
    ),
    "de": (
        "Bitte notieren Sie {term} vor der Besprechung.",
        "Heute Morgen habe ich wieder von {term} gehört.",
        "Können Sie mir mehr über {term} sagen?",
        "Wir haben gestern lange über {term} gesprochen.",
    ),
    "fr": (
        "Veuillez noter {term} avant la réunion.",
        "J'ai encore entendu parler de {term} ce matin.",
        "Pouvez-vous m'en dire plus sur {term} ?",
        "Nous avons parlé de {term} hier pendant un moment.",
    ),
    "es": (
        "Por favor, anota {term} antes de la reunión.",
        "Esta mañana volví a oír hablar de {term}.",
        "¿Puedes contarme más sobre {term}?",
        "Ayer hablamos un rato de {term}.",
    ),
    "it": (
        "Per favore, scrivi {term} prima della riunione.",
        "Stamattina ho sentito di nuovo parlare di {term}.",
        "Puoi dirmi di più su {term}?",
        "Ieri abbiamo parlato di {term} per un po'.",
    ),
    "nl": (
        "Schrijf {term} alsjeblieft op voor de vergadering.",
        "Vanochtend hoorde ik weer over {term}.",
        "Kun je me meer vertellen over {term}?",
        "We hebben gisteren een tijdje over {term} gepraat.",
    ),
    "pt": (
        "Por favor, anote {term} antes da reunião.",
        "Ouvi falar de {term} de novo esta manhã.",
        "Pode me contar mais sobre {term}?",
        "Ontem falamos sobre {term} por um tempo.",
    ),
}


def lines_with_term(term: Term, lines: Sequence[str], language: str | None) -> list[str]:
    """The ``lines`` that hold ``term`` (any spelling, matched as the metric matches it)."""
    spellings = spelling_tokens(term, language, "transcribe")
    return [line for line in lines if find_occurrences(tokens(line, language), spellings)]


def term_sentences(
    terms: TermList, lines: Sequence[str], language: str, per_term: int = 3
) -> list[tuple[str, str]]:
    """(term, sentence) pairs: for each term, up to ``per_term`` of the user's ``lines`` that
    hold it, else ``per_term`` carrier sentences of ``language`` (:data:`CARRIER_SENTENCES`,
    by primary subtag) around it. A language without carrier sentences is an
    :class:`AsrtuneError` only when a term has no line of its own."""
    if per_term < 1:
        raise AsrtuneError(f"sentences per term must be at least 1, got {per_term}")
    code = language.split("-")[0].lower()
    pairs: list[tuple[str, str]] = []
    for term in terms.terms:
        own = lines_with_term(term, lines, code)[:per_term]
        if not own:
            carriers = CARRIER_SENTENCES.get(code)
            if carriers is None:
                raise AsrtuneError(
                    f"no line of your text holds {term.term!r} and there are no carrier "
                    f"sentences for {language!r} (known: {', '.join(sorted(CARRIER_SENTENCES))}):"
                    " add lines that use each term"
                )
            own = [carriers[i % len(carriers)].format(term=term.term) for i in range(per_term)]
        pairs += [(term.term, sentence) for sentence in own]
    return pairs
