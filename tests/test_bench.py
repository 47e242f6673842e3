"""asrtune bench on a tiny model: both recipes run, results have the promised shape."""

from __future__ import annotations

import json
from pathlib import Path

from asrtune.bench import ReferenceCollator, eval_speed, reference_features, time_to_wer
from asrtune.cli import main
from asrtune.data.manifest import Row
from asrtune.data.rows import load_rows
from asrtune.models import load_model
from tests.conftest import write_dataset


def test_eval_speed_counts_every_evaluation() -> None:
    rows = [Row(id=str(i), audio_path="x.wav", text="t", duration=d) for i, d in enumerate((2, 3))]
    assert eval_speed(rows, [1.0, 4.0]) == 2.0  # 5 s of audio, twice, in 5 s
    assert eval_speed(rows, []) == 0.0


def test_time_to_wer() -> None:
    curve = [(0.0, 0.8), (10.0, 0.3), (20.0, 0.2), (30.0, 0.1)]
    assert time_to_wer(curve, 0.25) == 20.0
    assert time_to_wer(curve, 0.05) is None


def test_reference_collator_pads_labels_and_strips_the_start_token(
    tiny_whisper_en: Path, dataset: Path
) -> None:
    loaded = load_model(str(tiny_whisper_en))
    prepared = reference_features(loaded, load_rows(dataset).rows[:3])
    start = loaded.model.config.decoder_start_token_id
    assert all(p["labels"][0] == start for p in prepared)  # the article's tokenizer output
    batch = ReferenceCollator(loaded.processor, start)(prepared)
    assert batch["input_features"].shape == (3, 80, 3000)
    assert (batch["labels"][:, 0] != start).all()
    longest = max(len(p["labels"]) for p in prepared) - 1
    assert batch["labels"].shape == (3, longest) and (batch["labels"] == -100).any()


def test_bench_cli_writes_results(tiny_whisper_en: Path, tmp_path: Path) -> None:
    train = write_dataset(tmp_path / "train", 8)
    test = write_dataset(tmp_path / "test", 3)
    out = tmp_path / "bench.json"
    terms = tmp_path / "terms.txt"  # rows 0 and 5 say "the quick brown fox", row 2 "coffee"
    terms.write_text("quick brown fox\ncoffee\nKubernetes\n", encoding="utf-8")
    assert (
        main(
            [
                "bench",
                "--model",
                str(tiny_whisper_en),
                "--train-manifest",
                str(train),
                "--eval-manifest",
                str(test),
                "--epochs",
                "1",
                "--asrtune-epochs",
                "2",
                "--output",
                str(out),
                "--output-dir",
                str(tmp_path / "runs"),
                "--terms",
                str(terms),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    for name in ("reference", "asrtune"):
        assert {"audio_seconds_per_second", "train_seconds", "wer"} <= set(result[name])
        assert result[name]["curve"][0][0] == 0.0
        assert result[name]["eval_audio_seconds_per_second"] > 0
    assert len(result["reference"]["curve"]) == 2 and len(result["asrtune"]["curve"]) == 3
    assert result["throughput_ratio"] > 0
    assert result["eval_to_train_speed_ratio"] > 0
    # both recipes' final evaluations counted the terms of the 3 eval rows (row 0: the fox,
    # row 2: coffee), whatever the tiny model said
    for name in ("reference", "asrtune"):
        per_term = {t["term"]: t["occurrences"] for t in result[name]["terms"]["per_term"]}
        assert per_term == {"quick brown fox": 1, "coffee": 1, "Kubernetes": 0}
        assert result["term_recall"][name] == result[name]["terms"]["recall"]
