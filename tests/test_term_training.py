"""Training for terms: sentences that hold each term (``data synth --terms``) and
``--term_oversample`` (repeats of the rows holding rare terms)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asrtune.data.manifest import Row
from asrtune.errors import AsrtuneError
from asrtune.terms import CARRIER_SENTENCES, parse_terms, term_sentences
from asrtune.training_data import oversample_terms, rows_per_term

TERMS = parse_terms(["Kubernetes", "PostgreSQL\tPostgres", "Grafana"])


def test_term_sentences_prefer_the_users_lines() -> None:
    lines = [
        "We moved the cluster to Kubernetes.",
        "Nothing to see here.",
        "Postgres went down at noon.",  # an alternative spelling holds the term too
        "Kubernetes restarted the pod twice.",
        "Kubernetes again, a third time.",
    ]
    pairs = term_sentences(TERMS, lines, "en-us", per_term=2)
    assert pairs[:3] == [
        ("Kubernetes", lines[0]),
        ("Kubernetes", lines[3]),
        ("PostgreSQL", lines[2]),
    ]
    # Grafana is in no line: two carrier sentences of English around it
    assert pairs[3:] == [("Grafana", s.format(term="Grafana")) for s in CARRIER_SENTENCES["en"][:2]]
    # "cat" is not found inside "category" (word boundaries, as the metric matches)
    assert term_sentences(parse_terms(["cat"]), ["a category"], "en", 1)[0][1] != "a category"


def test_term_sentences_without_carriers_need_the_users_lines() -> None:
    assert term_sentences(parse_terms(["東京"]), ["東京に行きます"], "ja", 1) == [
        ("東京", "東京に行きます")
    ]
    with pytest.raises(AsrtuneError, match="no carrier sentences for 'ja'"):
        term_sentences(parse_terms(["大阪"]), ["東京に行きます"], "ja", 1)


def test_synth_terms_speaks_sentences_for_each_term(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("espeakng_loader")
    from asrtune.cli import main

    terms = tmp_path / "terms.txt"
    terms.write_text("Kubernetes\nGrafana\n", encoding="utf-8")
    text = tmp_path / "text.txt"
    text.write_text("Our Grafana board is red.\nUnrelated line.\n", encoding="utf-8")
    out = tmp_path / "synth"
    argv = ["data", "synth", "--terms", str(terms), "--text", str(text), "--voices", "2"]
    assert main([*argv, "--sentences-per-term", "1", "--output", str(out)]) == 0
    assert "2 sentences for 2 terms (1 from your text, 1 carrier sentences)" in (
        capsys.readouterr().err
    )
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    texts = sorted({r["text"] for r in rows})
    assert texts == sorted(["Our Grafana board is red.", CARRIER_SENTENCES["en"][0].format(
        term="Kubernetes")])  # fmt: skip
    assert len(rows) == 4 and all((out / r["audio_path"]).is_file() for r in rows)  # 2 voices


def test_synth_needs_text_or_terms(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from asrtune.cli import main

    assert main(["data", "synth", "--output", str(tmp_path / "o")]) == 2
    assert "needs --text FILE or --terms FILE" in capsys.readouterr().err


def _rows(*texts: str) -> list[Row]:
    return [Row(id=f"r{i}", audio_path=f"{i}.wav", text=t, language="en") for i, t in
            enumerate(texts)]  # fmt: skip


def test_oversample_repeats_the_rows_of_rare_terms_only() -> None:
    rows = _rows(
        "kubernetes is up",  # Kubernetes: 3 rows, not rare for a target of 3
        "kubernetes is down",
        "kubernetes and postgres",  # PostgreSQL: 1 row -> 3 copies in all
        "nothing here",
        "grafana board",  # Grafana: 2 rows -> ceil(3/2) = 2 copies each
        "grafana again",
    )
    assert rows_per_term(rows, TERMS, "en") == [[0, 1, 2], [2], [4, 5]]
    repeated, report = oversample_terms(rows, TERMS, target=3)
    assert [r.id for r in repeated[len(rows) :]] == ["r2#term1", "r2#term2", "r4#term1", "r5#term1"]
    assert report == {"target": 3, "rare_terms": {"PostgreSQL": 1, "Grafana": 2}, "added_rows": 4}
    assert oversample_terms(rows, TERMS, target=1)[1]["added_rows"] == 0


def test_train_term_oversample_is_logged_and_recorded(
    tiny_whisper: Path, dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from asrtune.cli import main

    terms = tmp_path / "terms.txt"  # rows 0 and 5 say the fox, rows 2 and 7 coffee, row 4 station
    terms.write_text("quick brown fox\ncoffee\ntrain station\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["train", "--model", str(tiny_whisper), "--train-manifest", str(dataset)]
    argv += ["--output_dir", str(out), "--max_steps", "1", "--report_to", "none"]
    with caplog.at_level("INFO", logger="asrtune"):
        assert main([*argv, "--terms", str(terms), "--term_oversample", "2"]) == 0
    assert "rare terms (training rows holding them): train station (1); 1 rows added" in caplog.text
    config = json.loads((out / "training_config.json").read_text())
    assert config["data"]["term_oversample"] == 2
    assert config["term_oversample"] == {
        "target": 2,
        "rare_terms": {"train station": 1},
        "added_rows": 1,
    }
    assert main([*argv, "--term_oversample", "2"]) == 2
