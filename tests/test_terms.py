"""The term metric (asrtune.terms): term files, and counts checked by hand on a small fixture."""

from __future__ import annotations

import json
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


# --- through the CLI and the API, on a tiny model --------------------------------------------

# The `dataset` fixture's 8 rows say SAMPLE_SENTENCES["en"][i % 5]: rows 0 and 5 "The quick
# brown fox ...", rows 2 and 7 "... a cup of coffee ...", row 4 "... the train station ...".
CLI_TERMS = "quick brown fox\ncoffee\ntrain station\ttrainstation\nKubernetes\n"
CLI_OCCURRENCES = {"quick brown fox": 2, "coffee": 2, "train station": 1, "Kubernetes": 0}
CLI_ROW_TERMS = [["quick brown fox"], [], ["coffee"], [], ["train station"]]
CLI_ROW_TERMS += [["quick brown fox"], [], ["coffee"]]


def test_eval_reports_terms(
    talkative_whisper: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from asrtune.cli import main

    terms = tmp_path / "terms.txt"
    terms.write_text(CLI_TERMS, encoding="utf-8")
    report = tmp_path / "report.json"
    argv = ["eval", "--model", str(talkative_whisper), "--manifest", str(dataset)]
    code = main([*argv, "--output", str(report), "--terms", str(terms), "--max-new-tokens", "8"])
    assert code == 0
    out, err = capsys.readouterr()
    data = json.loads(report.read_text())
    assert json.loads(out)["terms"] == data["terms"]
    per_term = {t["term"]: t["occurrences"] for t in data["terms"]["per_term"]}
    assert per_term == CLI_OCCURRENCES and data["terms"]["occurrences"] == 5
    rows = [json.loads(x) for x in (tmp_path / "report.utterances.jsonl").read_text().splitlines()]
    # each row's reference terms are either found or missed
    assert [sorted(r["terms"]["found"] + r["terms"]["missed"]) for r in rows] == CLI_ROW_TERMS
    # the report's figures are those of the texts it lists (whatever the random model said)
    listed = score_terms(parse_terms(CLI_TERMS.splitlines()), [r["ref"] for r in rows],
                         [r["hyp"] for r in rows], ["en"] * len(rows))  # fmt: skip
    assert data["terms"] == listed.as_dict()
    assert err.strip().splitlines()[-1] == listed.summary()


def test_eval_term_file_mistakes_are_one_line(
    tiny_whisper: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from asrtune.cli import main

    argv = ["eval", "--model", str(tiny_whisper), "--manifest", str(dataset), "--terms"]
    assert main([*argv, str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "term file" in err and "not found" in err
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    assert main([*argv, str(tmp_path / "empty.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no terms" in err


def test_api_evaluate_takes_terms(tiny_whisper: Path, dataset: Path) -> None:
    import asrtune

    result = asrtune.evaluate(
        str(tiny_whisper), dataset, max_samples=3, terms=parse_terms(["coffee", "fox"])
    )
    assert result.terms is not None
    assert [t.occurrences for t in result.terms.per_term] == [1, 1]  # rows 0 (fox), 2 (coffee)
    assert asrtune.evaluate(str(tiny_whisper), dataset, max_samples=1).terms is None


# --- evaluation during training -------------------------------------------------------------


def _train_args(model: Path, dataset: Path, out: Path) -> list[str]:
    args = ["train", "--model", str(model), "--train-manifest", str(dataset)]
    args += ["--eval-manifest", str(dataset), "--output_dir", str(out), "--report_to", "none"]
    return [*args, "--learning_rate", "1e-3", "--generation_max_length", "8"]


def test_train_logs_term_recall_and_keeps_the_best_by_it(
    talkative_whisper: Path, dataset: Path, tmp_path: Path
) -> None:
    from asrtune.cli import main

    terms = tmp_path / "terms.txt"
    terms.write_text(CLI_TERMS, encoding="utf-8")
    out = tmp_path / "by-terms"
    args = [*_train_args(talkative_whisper, dataset, out), "--num_train_epochs", "2"]
    assert main([*args, "--terms", str(terms), "--metric_for_best_model", "term_recall"]) == 0
    config = json.loads((out / "training_config.json").read_text())["training"]
    assert config["metric_for_best_model"] == "term_recall"
    assert config["greater_is_better"] is True  # recall: higher is better
    state = json.loads(
        sorted(out.glob("checkpoint-*"))[-1].joinpath("trainer_state.json").read_text()
    )
    evals = [e for e in state["log_history"] if "eval_wer" in e]
    recalls = [e["eval_term_recall"] for e in evals]
    assert len(recalls) == 2 and all("eval_term_false_alarms" in e for e in evals)
    assert state["best_metric"] == max(recalls)
    final = json.loads((out / "eval_results.json").read_text())
    assert final["terms"]["occurrences"] == 5  # the hand count of test_eval_reports_terms
    from asrtune.publish.bundle import model_bundle
    from asrtune.publish.card import build_card

    with model_bundle(out) as bundle:
        card = build_card(bundle, "me/tiny")
    recall = final["terms"]["recall"]
    assert "### Domain terms" in card
    assert (
        f"- this model: term recall {100 * recall:.1f} % ({final['terms']['recognized']} of 5"
        in card
    )


def test_train_term_recall_mistakes_are_one_line(
    tiny_whisper: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from asrtune.cli import main

    args = [*_train_args(tiny_whisper, dataset, tmp_path / "o"), "--max_steps", "1"]
    args += ["--metric_for_best_model", "term_recall"]
    assert main(args) == 2
    assert "term_recall needs --terms FILE" in capsys.readouterr().err
    absent = tmp_path / "absent.txt"
    absent.write_text("Kubernetes\n", encoding="utf-8")
    assert main([*args, "--terms", str(absent)]) == 2
    assert "no eval reference holds a term" in capsys.readouterr().err
    assert main([*args, "--terms", str(tmp_path / "missing.txt")]) == 2
    assert "not found" in capsys.readouterr().err
    no_eval = ["train", "--model", str(tiny_whisper), "--train-manifest", str(dataset)]
    no_eval += ["--output_dir", str(tmp_path / "n"), "--max_steps", "1", "--report_to", "none"]
    assert main([*no_eval, "--terms", str(absent)]) == 2
    assert "--terms needs an eval set" in capsys.readouterr().err


# --- the model card -------------------------------------------------------------------------


def test_the_card_shows_term_recall_and_the_terms_still_missed(tmp_path: Path) -> None:
    from asrtune.publish.card import term_table

    terms = _score(tmp_path).as_dict()
    base = {**terms, "recognized": 1, "recall": 1 / 8, "false_alarms": 0}
    table = term_table({"wer": 0.2, "terms": terms}, {"wer": 0.4, "terms": base})
    assert "- base model: term recall 12.5 % (1 of 8 occurrences), 0 false alarm(s)" in table
    assert "- this model: term recall 37.5 % (3 of 8 occurrences), 2 false alarm(s)" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    # missed most first: 東京, Kubernetes, New York City, PostgreSQL, cat each missed once
    assert rows[0] == "| term | occurrences | recognized | heard as |"
    assert "| Kubernetes | 2 | 1 | “cooper nettys” |" in rows
    assert "| 東京 | 2 | 1 | “京都” |" in rows and len(rows) == 6
    assert term_table({"wer": 0.2}) is None


# --- under torchrun -------------------------------------------------------------------------


def test_two_processes_count_terms_like_one(
    talkative_whisper: Path, dataset: Path, tmp_path: Path
) -> None:
    from collections import Counter

    from asrtune.cli import main
    from tests.test_distributed import _torchrun

    args = ["eval", "--model", str(talkative_whisper), "--manifest", str(dataset)]
    args += ["--precision", "fp32", "--max-new-tokens", "16", "--batch-size", "2"]
    assert main([*args, "--output", str(tmp_path / "plain" / "report.json")]) == 0
    said = (tmp_path / "plain" / "report.utterances.jsonl").read_text().splitlines()
    words = Counter(w for line in said for w in json.loads(line)["hyp_normalized"].split())
    terms = tmp_path / "terms.txt"  # the references' terms and the word the model says most
    terms.write_text(CLI_TERMS + words.most_common(1)[0][0] + "\n", encoding="utf-8")
    args += ["--terms", str(terms)]
    assert main([*args, "--output", str(tmp_path / "one" / "report.json")]) == 0
    _torchrun([*args, "--output", str(tmp_path / "two" / "report.json")])

    def read(name: str) -> tuple[dict, list[dict]]:
        folder = tmp_path / name
        lines = (folder / "report.utterances.jsonl").read_text().splitlines()
        return json.loads((folder / "report.json").read_text())["terms"], [
            json.loads(x)["terms"] for x in lines
        ]

    (one, one_rows), (two, two_rows) = read("one"), read("two")
    assert one["false_alarms"] > 0  # the model's own word is not in the references
    assert two == one and two_rows == one_rows
