"""The term metric (asrtune.terms): term files, and counts checked by hand on a small fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrtune.errors import AsrtuneError
from asrtune.terms import Term, parse_terms, read_terms, score_terms

TERM_FILE = (
    "# help-desk terms\n"
    "Kubernetes\n"
    "New York City\n"
    "PostgreSQL\tPostgres|Postgre SQL\n"
    "\n"
    "東京\t东京\n"
    "cat\n"
)

# (reference, hypothesis, language)
FIXTURE = [
    # Kubernetes: missed, heard as "cooper nettys" (the words between "moved" and "to").
    # New York City: missed, the hypothesis stops at "new york".
    ("We moved Kubernetes to New York City.", "we moved cooper nettys to new york", "en"),
    # PostgreSQL: twice in the reference ("Postgres" is an alternative spelling), once in the
    # hypothesis ("postgre sql", another alternative) → 1 recognized, 1 missed; the missed
    # one is heard as "post dress". cat: missed, "category" is not the word "cat".
    (
        "Postgres runs on PostgreSQL and the cat sleeps.",
        "postgre sql runs on post dress and the category sleeps",
        "en",
    ),
    # Kubernetes: once in the reference, twice in the hypothesis → 1 recognized, 1 false alarm.
    ("Call Kubernetes support.", "call kubernetes support kubernetes", "en"),
    # A clip without speech: "New York City" in the hypothesis is a false alarm.
    ("", "New York City", "en"),
    # Japanese matches characters: 東京 missed, heard as 京都.
    ("東京に行きます。", "京都に行きます", "ja"),
    # Chinese, the alternative spelling 东京: recognized.
    ("我在东京工作。", "我在东京工作", "zh"),
]


def _score(tmp_path: Path):
    path = tmp_path / "terms.txt"
    path.write_text(TERM_FILE, encoding="utf-8")
    refs, hyps, languages = zip(*FIXTURE, strict=True)
    return score_terms(read_terms(path), refs, hyps, languages)


def test_term_file_format() -> None:
    terms = parse_terms(TERM_FILE.splitlines())
    assert terms.terms == (
        Term("Kubernetes"),
        Term("New York City"),
        Term("PostgreSQL", ("Postgres", "Postgre SQL")),
        Term("東京", ("东京",)),
        Term("cat"),
    )
    # further tabs separate alternatives too; a BOM and CRLF line ends are no part of a term
    assert parse_terms(["\ufeffGPU\tgee pee you\tG P U|gpu\r\n"]).terms == (
        Term("GPU", ("gee pee you", "G P U", "gpu")),
    )


def test_term_file_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(AsrtuneError, match="not found"):
        read_terms(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(AsrtuneError, match="has no terms"):
        read_terms(empty)
    with pytest.raises(AsrtuneError, match="line 3: term 'kubernetes' is already on line 1"):
        parse_terms(["Kubernetes", "Helm", "kubernetes"])


def test_totals_equal_a_hand_count(tmp_path: Path) -> None:
    score = _score(tmp_path)
    # reference occurrences: Kubernetes 1+1, New York City 1, PostgreSQL 2, 東京 1+1, cat 1 = 8
    # recognized: Kubernetes 1 (row 3), PostgreSQL 1, 东京 1 (row 6) = 3
    # false alarms: Kubernetes 1 (row 3), New York City 1 (row 4) = 2
    assert (score.occurrences, score.recognized, score.false_alarms) == (8, 3, 2)
    assert score.recall == pytest.approx(3 / 8)
    assert score.summary() == "term recall 37.5% (3/8), false alarms 2"


def test_per_term_figures_equal_a_hand_count(tmp_path: Path) -> None:
    per_term = {t["term"]: t for t in _score(tmp_path).as_dict()["per_term"]}
    assert list(per_term) == ["Kubernetes", "New York City", "PostgreSQL", "東京", "cat"]
    expected = {  # term: (occurrences, recognized, false alarms, misrecognized as)
        "Kubernetes": (2, 1, 1, ["cooper nettys"]),
        "New York City": (1, 0, 1, ["new york"]),
        "PostgreSQL": (2, 1, 0, ["post dress"]),
        "東京": (2, 1, 0, ["京都"]),
        "cat": (1, 0, 0, ["category"]),
    }
    for term, (occurrences, recognized, false_alarms, heard) in expected.items():
        t = per_term[term]
        assert (t["occurrences"], t["recognized"], t["false_alarms"]) == (
            occurrences,
            recognized,
            false_alarms,
        ), term
        assert t["misrecognized_as"] == heard, term


def test_each_row_lists_its_terms(tmp_path: Path) -> None:
    rows = [r.as_dict() for r in _score(tmp_path).rows]
    assert rows == [
        {"found": [], "missed": ["Kubernetes", "New York City"], "false_alarms": []},
        {"found": ["PostgreSQL"], "missed": ["PostgreSQL", "cat"], "false_alarms": []},
        {"found": ["Kubernetes"], "missed": [], "false_alarms": ["Kubernetes"]},
        {"found": [], "missed": [], "false_alarms": ["New York City"]},
        {"found": [], "missed": ["東京"], "false_alarms": []},
        {"found": ["東京"], "missed": [], "false_alarms": []},
    ]


def test_terms_are_normalized_like_wer() -> None:
    terms = parse_terms(["Dr. Smith", "twenty-one", "Café"])
    # English: "Dr." is "doctor" and numbers are digits for WER, so for terms too
    score = score_terms(
        terms, ["Ask Dr. Smith about twenty-one."], ["ask doctor smith about 21"], ["en"]
    )
    assert (score.occurrences, score.recognized) == (2, 2)
    # other languages keep accents: "cafe" is not "Café"
    score = score_terms(terms, ["Im Café."], ["im cafe"], ["de"])
    assert (score.occurrences, score.recognized, score.per_term[2].misrecognized_as) == (
        1,
        0,
        ("cafe",),
    )


def test_a_deleted_term_was_heard_as_nothing() -> None:
    score = score_terms(parse_terms(["Kubernetes"]), ["use Kubernetes now"], ["use now"], ["en"])
    assert score.per_term[0].misrecognized_as == ("",)
    assert score_terms(parse_terms(["x"]), ["a b"], ["a b"], ["en"]).recall is None
