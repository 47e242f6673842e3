"""One admission rule: `asrtune data check`, finite training and streaming leave out the
same rows for the same reasons; a row whose labels hold the tokenizer's unknown token is
never trained silently (left out with a reason, or kept with --allow_unknown_tokens)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf

from asrtune.cli import main
from asrtune.config import train_job_from_kwargs
from asrtune.data.admission import EMPTY_TEXT
from asrtune.data_check import check_manifest
from asrtune.models import LoadedModel, load_model
from asrtune.models.tiny_parakeet import make_tiny_parakeet_ctc
from asrtune.training_data import (
    SkipLog,
    build_finite_dataset,
    build_stream_dataset,
    load_training_rows,
)
from tests.conftest import tone

#: Cyrillic: outside the tiny Parakeet vocabulary (printable ASCII only), so <unk> tokens.
OUTSIDE_THE_VOCABULARY = "привет мир"


@pytest.fixture(scope="module")
def tiny_ctc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_parakeet_ctc(tmp_path_factory.mktemp("models") / "tiny-ctc")


@pytest.fixture(scope="module")
def ctc(tiny_ctc: Path) -> LoadedModel:
    return load_model(str(tiny_ctc))


def _manifest(folder: Path) -> Path:
    """Two rows the tiny Parakeet can write and one (line 2) it cannot."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [("ok", "hello world"), ("cyrillic", OUTSIDE_THE_VOCABULARY), ("ok2", "good day")]
    lines = []
    for index, (row_id, text) in enumerate(rows):
        sf.write(folder / f"{row_id}.wav", tone(1.0 + 0.2 * index, 300 + 50 * index), 16000)
        lines.append(json.dumps({"id": row_id, "audio_path": f"{row_id}.wav", "text": text}))
    manifest = folder / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def _job(model: Path, manifest: Path, out: Path, **kwargs: object) -> object:
    return train_job_from_kwargs(
        model=str(model),
        train_manifest=str(manifest),
        output_dir=str(out),
        report_to="none",
        **kwargs,
    )


def _reason(records: list[dict]) -> dict[str, str]:
    return {r["id"]: r["reason"] for r in records}


def test_unknown_tokens_leave_a_row_out_of_training_and_the_check_with_one_reason(
    tiny_ctc: Path, ctc: LoadedModel, tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path / "data")
    report = check_manifest(manifest, str(tiny_ctc), progress=False)
    assert report.ok and report.num_valid == 3  # a valid row, which this model cannot take
    [left_out] = report.over_limits
    assert left_out.line == 2 and "unknown token" in left_out.reason
    assert "--allow_unknown_tokens" in left_out.reason
    assert [r.line for r in report.within_limits] == [1, 3]

    out = tmp_path / "read"
    job = _job(tiny_ctc, manifest, out)
    rows, _ = load_training_rows(job, out)
    dataset, skipped = build_finite_dataset(job, ctc, rows, out)
    assert _reason(skipped) == {"cyrillic": left_out.reason}
    written = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert _reason(written) == {"cyrillic": left_out.reason}
    trained = [ex.row.id for window in dataset.windows for ex in window]
    assert sorted(trained) == ["ok", "ok2"]


def test_allow_unknown_tokens_keeps_the_row(ctc: LoadedModel, tiny_ctc: Path, tmp_path: Path):
    manifest = _manifest(tmp_path / "data")
    out = tmp_path / "out"
    job = _job(tiny_ctc, manifest, out, allow_unknown_tokens=True)
    assert job.data.allow_unknown_tokens
    rows, _ = load_training_rows(job, out)
    dataset, skipped = build_finite_dataset(job, ctc, rows, out)
    assert skipped == []
    trained = [ex.row.id for window in dataset.windows for ex in window]
    assert sorted(trained) == ["cyrillic", "ok", "ok2"]
    report = check_manifest(manifest, str(tiny_ctc), progress=False, allow_unknown_tokens=True)
    assert report.over_limits == [] and len(report.within_limits) == 3
    assert any("unknown token" in w.reason for w in report.warnings)  # kept, not silently


def test_streaming_leaves_out_the_same_row_for_the_same_reason(
    tiny_ctc: Path, ctc: LoadedModel, tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path / "data")
    checked = check_manifest(manifest, str(tiny_ctc), progress=False).over_limits[0].reason
    out = tmp_path / "stream"
    no_extras = {"nonspeech_share": 0.0, "single_share": 0.0}
    job = _job(tiny_ctc, manifest, out, streaming=True, max_steps=1, **no_extras)
    skips = SkipLog(out)
    assert len(list(build_stream_dataset(job, ctc, skips))) == 2
    assert _reason(skips.finish()) == {"cyrillic": checked}

    kept = tmp_path / "kept"
    job = _job(tiny_ctc, manifest, kept, streaming=True, max_steps=1, allow_unknown_tokens=True)
    skips = SkipLog(kept)
    assert len(list(build_stream_dataset(job, ctc, skips))) == 3
    assert skips.finish() == []


def test_data_check_cli_reports_unknown_tokens(
    tiny_ctc: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = _manifest(tmp_path / "data")
    argv = ["data", "check", str(manifest), "--model", str(tiny_ctc)]
    assert main(argv) == 0  # left out of training, not invalid
    out = capsys.readouterr().out
    assert "line 2:" in out and "unknown token" in out
    assert main([*argv, "--allow-unknown-tokens"]) == 0
    assert "1 over the model's limits" not in capsys.readouterr().out


def test_the_rule_refuses_broken_data_as_invalid_and_ill_fitting_rows_as_left_out(
    tiny_whisper: Path, ctc: LoadedModel, tmp_path: Path
) -> None:
    from asrtune.data.admission import Admitted, Refusal, admit
    from asrtune.data.manifest import Row
    from asrtune.models.fit import ModelFit

    sf.write(tmp_path / "a.wav", tone(1.5, 300), 16000)
    row = Row(id="a", audio_path=str(tmp_path / "a.wav"), text="hello world")
    whisper = ModelFit(load_model(str(tiny_whisper)))
    assert admit(row) == Admitted(replace(row, duration=1.5))  # the header's duration
    assert admit(replace(row, text=" ")) == Refusal(EMPTY_TEXT, invalid=True)
    assert admit(replace(row, text=""), nonspeech_ok=True) == Admitted(
        replace(row, text="", duration=1.5)
    )
    assert admit(row, audio_problem="silent audio") == Refusal("silent audio", invalid=True)
    missing = admit(replace(row, audio_path=str(tmp_path / "b.wav")))
    assert isinstance(missing, Refusal) and missing.invalid
    assert missing.reason.startswith("unreadable audio:")
    no_language = admit(row, whisper)
    assert isinstance(no_language, Refusal) and no_language.invalid and no_language.language
    assert "needs a language" in no_language.reason
    admitted = admit(replace(row, language="en"), whisper)
    assert isinstance(admitted, Admitted) and admitted.example.num_tokens > 0
    unknown = admit(replace(row, text="hello мир"), ModelFit(ctc))
    assert isinstance(unknown, Refusal) and not unknown.invalid
    assert unknown.reason.startswith("3 unknown token(s): the tokenizer has no token for 'имр'")
    kept = admit(replace(row, text="hello мир"), ModelFit(ctc, allow_unknown_tokens=True))
    assert isinstance(kept, Admitted) and kept.notes


def test_streaming_stops_on_a_language_the_model_needs(tiny_whisper: Path, tmp_path: Path):
    """A missing language is the run's mistake, not one row's: streaming stops on it with
    the reason, as training on read rows does, rather than skipping every row."""
    from asrtune.errors import AsrtuneError

    manifest = _manifest(tmp_path / "data")
    job = _job(tiny_whisper, manifest, tmp_path / "out", streaming=True, max_steps=1)
    stream = build_stream_dataset(job, load_model(str(tiny_whisper)), SkipLog(tmp_path / "out"))
    with pytest.raises(AsrtuneError, match="needs a language"):
        list(stream)
