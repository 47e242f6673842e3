"""Training data: rows over the model's limits are left out with the reason `asrtune data
check` gives, in records of one shape whether the data is streamed or read."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from asrtune.config import train_job_from_kwargs
from asrtune.data.validate import check_manifest
from asrtune.models import load_model, over_limit_reason
from asrtune.models import whisper as W
from asrtune.training_data import (
    SkipLog,
    build_finite_dataset,
    build_stream_dataset,
    load_training_rows,
)
from tests.conftest import tone


def _manifest(folder: Path) -> Path:
    """Two rows within the limits, one too long, one too wordy, one with a missing file
    and one malformed line."""
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "long.wav", tone(31, 300), 16000)
    sf.write(folder / "short.wav", tone(1, 350), 16000)
    sf.write(folder / "other.wav", tone(1.2, 400), 16000)
    rows = [
        {"id": "ok", "audio_path": "short.wav", "text": "fine"},
        {"id": "long", "audio_path": "long.wav", "text": "too long"},
        {"id": "wordy", "audio_path": "short.wav", "text": "word " * 80},
        {"id": "gone", "audio_path": "missing.wav", "text": "no file"},
        {"id": "ok2", "audio_path": "other.wav", "text": "also fine"},
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, "{not json")
    manifest = folder / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _job(model: Path, manifest: Path, out: Path, **kwargs: object) -> object:
    return train_job_from_kwargs(
        model=str(model),
        train_manifest=str(manifest),
        language="en",
        output_dir=str(out),
        report_to="none",
        **kwargs,
    )


def test_check_and_training_leave_out_the_same_rows_with_the_same_records(
    tiny_whisper: Path, tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path / "data")
    loaded = load_model(str(tiny_whisper))
    limits = W.limits(loaded)
    report = check_manifest(manifest, str(tiny_whisper), "en", progress=False)
    checked = {b.line: b.reason for b in report.over_limits}
    assert checked == {2: over_limit_reason(limits, 31.0, 1), 3: checked[3]}
    assert checked[2] == "audio 31.0 s > 30 s" and checked[3].endswith(" label tokens > 64")
    assert over_limit_reason(limits, 30.0, 64) is None

    read_out = tmp_path / "read"
    job = _job(tiny_whisper, manifest, read_out, drop_invalid=True)
    rows, dropped = load_training_rows(job, read_out)
    assert dropped == 2  # the malformed line and the missing file
    build_finite_dataset(job, loaded, rows, read_out)
    read = [json.loads(x) for x in (read_out / "skipped.jsonl").read_text().splitlines()]

    stream_out = tmp_path / "stream"
    job = _job(tiny_whisper, manifest, stream_out, streaming=True, max_steps=1)
    skips = SkipLog(stream_out)
    assert len(list(build_stream_dataset(job, loaded, skips))) == 1  # ok + ok2, packed
    streamed = skips.finish()

    # training gives the check's reason for the same rows, streamed or read
    assert {r["line"]: r["reason"] for r in read} == checked
    assert {r["line"]: r["reason"] for r in streamed if r["id"] in ("long", "wordy")} == checked
    # and one record shape for every row left out, streamed or read
    assert sorted(r["id"] or "" for r in streamed) == ["", "gone", "long", "wordy"]
    keys = {tuple(sorted(r)) for r in read + streamed}
    assert keys == {("audio_path", "id", "line", "reason")}


def test_rows_over_the_limit_with_timestamps_are_left_out_when_read(
    tiny_whisper: Path, tmp_path: Path
) -> None:
    loaded = load_model(str(tiny_whisper))
    limit = W.limits(loaded).max_label_tokens
    text = " ".join(["a"] * 60)  # 64 labels without timestamps, 65 with them
    assert len(W.encode_labels(loaded, [text], "en", "transcribe")) == limit
    sf.write(tmp_path / "a.wav", tone(1.0, 300), 16000)
    sf.write(tmp_path / "b.wav", tone(1.0, 350), 16000)
    rows = [
        {"id": "big", "audio_path": "a.wav", "text": text},
        {"id": "small", "audio_path": "b.wav", "text": "a a a"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    job = _job(tiny_whisper, manifest, out, pack_timestamps=True)
    rows, _ = load_training_rows(job, out)
    dataset, skipped = build_finite_dataset(job, loaded, rows, out)
    assert [(s["id"], s["reason"]) for s in skipped] == [("big", f"65 label tokens > {limit}")]
    assert all(len(dataset[i]["labels"]) <= limit for i in range(len(dataset)))
