"""``--eval_subset``: evaluations during training score a fixed sample of the eval set, the
last one and the final one score all of it."""

from __future__ import annotations

import json
from pathlib import Path

from asrtune.cli import main
from asrtune.data.manifest import Row
from asrtune.evaluation import spread_subset
from tests.conftest import FAST_TRAINING


def _rows(speech: int, probes: int) -> list[Row]:
    rows = [Row(id=f"s{i}", audio_path=f"s{i}.wav", text=f"text {i}") for i in range(speech)]
    return rows + [Row(id=f"p{i}", audio_path=f"p{i}.wav", text="") for i in range(probes)]


def test_the_sample_is_spread_over_the_set_and_keeps_the_probe_share() -> None:
    rows = _rows(100, 12)
    sample = spread_subset(rows, 28)
    assert len(sample) == 28 and len({r.id for r in sample}) == 28
    assert sum(not r.text for r in sample) == 3  # 28 * 12 / 112
    speech = [int(r.id[1:]) for r in sample if r.text]
    assert speech == sorted(speech) and speech[0] < 10 and speech[-1] > 90  # spread, in order
    assert spread_subset(rows, 28) == sample  # the same sample every time


def test_a_few_probes_still_get_one_and_no_size_means_all() -> None:
    rows = _rows(50, 1)
    assert sum(not r.text for r in spread_subset(rows, 5)) == 1
    assert spread_subset(rows, None) is rows and spread_subset(rows, 0) is rows
    assert spread_subset(rows, 51) is rows and spread_subset(rows, 80) is rows
    assert [r.id for r in spread_subset(_rows(0, 6), 2)] == ["p1", "p4"]


def test_training_scores_the_sample_then_everything(
    tiny_whisper: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sub"
    args = ["--model", str(tiny_whisper), "--train-manifest", str(dataset)]
    args += ["--eval-manifest", str(dataset), "--output_dir", str(out)]
    args += [*FAST_TRAINING, "--num_train_epochs", "3", "--save_strategy", "epoch"]
    code = main(["train", *args, "--eval_subset", "3"])
    assert code == 0
    last = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((last / "trainer_state.json").read_text())
    evals = [e for e in state["log_history"] if "eval_wer" in e]
    # epochs 1 and 2 score 3 of the 8 rows; the last scores all 8 and is the final result
    assert [e["eval_num_samples"] for e in evals] == [3, 3, 8]
    report = json.loads((out / "eval_results.json").read_text())
    assert report["num_samples"] == 8 and report["wer"] == evals[-1]["eval_wer"]
