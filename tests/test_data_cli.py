"""`asrtune data check | synth | split` in-process: exit codes, outputs, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from asrtune.cli import main
from asrtune.data.manifest import read_manifest
from asrtune.data.split import split_rows
from tests.conftest import tone, write_dataset
from tests.test_validate import make_broken_dataset, row_line, write_manifest_lines

# ----- check ----------------------------------------------------------------------------


def test_check_broken_data_exits_1_with_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest, expected = make_broken_dataset(tmp_path / "d")
    report = tmp_path / "out" / "report.json"
    assert main(["data", "check", str(manifest), "--output", str(report)]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "invalid rows:" in out and "line 2: audio file not found" in out
    data = json.loads(report.read_text())
    assert list(data) == [
        "num_rows",
        "num_valid",
        "num_invalid",
        "problems",
        "over_limits",
        "warnings",
    ]
    assert (data["num_rows"], data["num_valid"], data["num_invalid"]) == (12, 1, 11)
    assert [p["line"] for p in data["problems"]] == [n for n, r in expected.items() if r]
    assert all(set(p) == {"line", "audio_path", "reason"} for p in data["problems"])


def test_check_clean_data_exits_0(dataset: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", str(dataset)]) == 0
    assert "8 rows, 8 valid, 0 invalid" in capsys.readouterr().out


def test_check_with_a_model_lists_rows_over_its_limits(
    tiny_whisper: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sf.write(tmp_path / "long.wav", tone(31.0, 200), 16000)
    sf.write(tmp_path / "ok.wav", tone(2.0, 300), 16000)
    manifest = write_manifest_lines(
        tmp_path / "m.jsonl", [row_line("long.wav"), row_line("ok.wav")]
    )
    report = tmp_path / "report.json"
    argv = ["data", "check", str(manifest), "--model", str(tiny_whisper), "--language", "en"]
    assert main([*argv, "--output", str(report)]) == 0  # over the limits is not invalid
    data = json.loads(report.read_text())
    assert data["num_invalid"] == 0 and data["num_valid"] == 2
    assert [(p["line"], p["reason"]) for p in data["over_limits"]] == [(1, "audio 31.0 s > 30 s")]
    assert "over the model's limits" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["data", "check", "/nonexistent/m.jsonl"], "manifest not found"),
        (["data", "check", "{tmp}/m.txt"], "unknown manifest format"),
        (["data", "check", "{dataset}", "--model", "/nonexistent/model"], "/nonexistent/model"),
        (["data", "check", "{dataset}", "--model", "{tiny}", "--language", "xx"], "language"),
        (["data", "synth", "--text", "{tmp}/none.txt", "--output", "{tmp}/o"], "not found"),
        (["data", "synth", "--text", "{tmp}/blank.txt", "--output", "{tmp}/o"], "no phrases"),
        (["data", "split", "{dataset}", "--eval-fraction", "1.5", "--output", "{tmp}"], "between"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    dataset: Path,
    tiny_whisper: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    (tmp_path / "m.txt").write_text("x")
    (tmp_path / "blank.txt").write_text("\n  \n")
    values = {"{tmp}": str(tmp_path), "{dataset}": str(dataset), "{tiny}": str(tiny_whisper)}
    for key, value in values.items():
        argv = [a.replace(key, value) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("asrtune: error: ")]) == 1


def test_data_needs_a_subcommand(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "frobnicate"])
    assert exit_info.value.code == 2


# ----- synth ----------------------------------------------------------------------------


def test_synth_two_phrases_two_voices(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("espeakng_loader")
    text = tmp_path / "phrases.txt"
    text.write_text("restart the gateway\n\n   \nopen a ticket for the printer\n")
    out = tmp_path / "synth"
    argv = ["data", "synth", "--text", str(text), "--language", "en", "--voices", "2"]
    assert main([*argv, "--seed", "3", "--output", str(out)]) == 0
    manifest = Path(capsys.readouterr().out.strip())
    assert manifest == out / "manifest.jsonl"
    rows = read_manifest(manifest).rows
    assert len(rows) == 4
    assert sorted(r.text for r in rows) == sorted(
        ["restart the gateway"] * 2 + ["open a ticket for the printer"] * 2
    )
    assert len({Path(r.audio_path).name for r in rows}) == 4
    assert main(["data", "check", str(manifest)]) == 0  # what synth makes passes the checks


# ----- split ----------------------------------------------------------------------------


def _split_outputs(out: Path) -> tuple[list[str], list[str]]:
    return tuple(  # type: ignore[return-value]
        [r.id for r in read_manifest(out / f"{side}.jsonl").rows] for side in ("train", "eval")
    )


def _many_rows(folder: Path, n: int, speakers: int | None = None, fmt: str = "jsonl") -> Path:
    """A manifest of n rows (audio need not exist to be split), optionally with speakers."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        lines = ["path,sentence,client_id"]
        lines += [f"clip{i}.wav,text {i},spk{i % speakers}" for i in range(n)]
        path = folder / "m.csv"
        path.write_text("\n".join(lines) + "\n")
        return path
    path = folder / "m.jsonl"
    records = []
    for i in range(n):
        record = {"id": f"u{i}", "audio_path": f"clip{i}.wav", "text": f"text {i}"}
        if speakers:
            record["speaker"] = f"spk{i % speakers}"
        records.append(json.dumps(record))
    path.write_text("\n".join(records) + "\n")
    return path


def test_split_is_seeded_and_keeps_the_fraction(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = _many_rows(tmp_path / "d", 100)
    outs = []
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        argv = ["data", "split", str(manifest), "--eval-fraction", "0.1", "--seed", seed]
        assert main([*argv, "--output", str(tmp_path / name)]) == 0
        outs.append(_split_outputs(tmp_path / name))
    assert outs[0] == outs[1] and outs[0] != outs[2]  # same seed, same split
    train, eval_ = outs[0]
    assert len(eval_) == 10 and len(train) == 90
    assert sorted(train + eval_, key=lambda x: int(x[1:])) == [f"u{i}" for i in range(100)]
    assert train == sorted(train, key=lambda x: int(x[1:]))  # original order kept
    assert "eval: 10 rows ->" in capsys.readouterr().out
    # audio paths are absolute, so the split files work from anywhere
    row = read_manifest(tmp_path / "a" / "train.jsonl").rows[0]
    assert Path(row.audio_path).is_absolute() and row.audio_path.startswith(str(manifest.parent))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_split_by_speaker_keeps_speakers_apart(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = _many_rows(tmp_path / "d", 120, speakers=12, fmt=fmt)
    out = tmp_path / "out"
    argv = ["data", "split", str(manifest), "--eval_fraction", "0.25", "--output", str(out)]
    assert main(argv) == 0
    train = read_manifest(out / "train.jsonl").rows
    eval_ = read_manifest(out / "eval.jsonl").rows
    train_speakers = {r.speaker for r in train}
    eval_speakers = {r.speaker for r in eval_}
    assert train_speakers and eval_speakers and not train_speakers & eval_speakers
    assert len(train) + len(eval_) == 120
    assert len(eval_) == 30  # 3 of 12 speakers with 10 rows each
    assert "speakers" in capsys.readouterr().out


def test_split_rows_edge_cases(tmp_path: Path) -> None:
    rows = read_manifest(_many_rows(tmp_path / "a", 5)).rows
    split = split_rows(rows, 0.01)
    assert len(split.eval) == 1 and len(split.train) == 4  # never an empty eval side
    one_speaker = read_manifest(_many_rows(tmp_path / "b", 6, speakers=1)).rows
    from asrtune.errors import AsrtuneError

    with pytest.raises(AsrtuneError, match="1 speakers"):
        split_rows(one_speaker, 0.5)
    uneven = read_manifest(_many_rows(tmp_path / "c", 40, speakers=3)).rows
    split = split_rows(uneven, 0.3, seed=5)
    assert split.by_speaker and not split.speakers("train") & split.speakers("eval")


def test_split_reports_lines_that_are_not_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = write_dataset(tmp_path / "d", 4)
    with open(manifest, "a") as handle:
        handle.write("{broken\n")
    assert main(["data", "split", str(manifest), "--output", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "lines left out" in out and "line 5: malformed JSON" in out


def test_empty_text_is_a_probe_in_an_eval_set_and_an_error_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import numpy as np

    sf.write(tmp_path / "speech.wav", tone(2.0, 220), 16000)
    sf.write(tmp_path / "silence.wav", np.zeros(16000, dtype=np.float32), 16000)
    manifest = write_manifest_lines(
        tmp_path / "m.jsonl",
        [row_line("speech.wav"), row_line("silence.wav", text=""), '{"audio_path": "speech.wav"}'],
    )
    assert main(["data", "check", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert "line 2: empty text (allowed in evaluation sets only)" in out
    assert "line 3: no text column" in out
    report = tmp_path / "r.json"
    assert main(["data", "check", str(manifest), "--eval-set", "--output", str(report)]) == 1
    data = json.loads(report.read_text())  # a missing column is still an error
    assert [p["line"] for p in data["problems"]] == [3]
    assert [(w["line"], w["reason"]) for w in data["warnings"]] == [
        (2, "no text: a non-speech probe, scored apart from WER")
    ]
    assert data["num_valid"] == 2  # digital silence is a fine probe
