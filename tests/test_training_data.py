"""Training data: rows over the model's limits are left out with the reason `asrtune data
check` gives, in records of one shape whether the data is streamed or read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from asrtune.config import train_job_from_kwargs
from asrtune.data_check import check_manifest
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
    no_extras = {"nonspeech_share": 0.0, "single_share": 0.0}
    job = _job(tiny_whisper, manifest, stream_out, streaming=True, max_steps=1, **no_extras)
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
    job = _job(tiny_whisper, manifest, out, timestamp_share=1.0)
    rows, _ = load_training_rows(job, out)
    dataset, skipped = build_finite_dataset(job, loaded, rows, out)
    assert [(s["id"], s["reason"]) for s in skipped] == [("big", f"65 label tokens > {limit}")]
    assert all(len(dataset[i]["labels"]) <= limit for i in range(len(dataset)))


# ----- the training mix ---------------------------------------------------------------


def test_the_mix_adds_non_speech_and_single_windows_the_same_count_each_epoch(
    tiny_whisper: Path, tmp_path: Path
) -> None:
    from asrtune.data.windows import TrainingMix
    from asrtune.dataset import WindowDataset
    from asrtune.training_data import admit_rows
    from tests.conftest import write_dataset

    loaded = load_model(str(tiny_whisper))
    job = _job(tiny_whisper, write_dataset(tmp_path / "d", 30), tmp_path)
    rows = load_training_rows(job, tmp_path)[0]
    examples, _ = admit_rows(loaded, rows, "transcribe")
    plain = WindowDataset(loaded, examples, "transcribe", True, seed=0)
    mix = TrainingMix(nonspeech_share=0.5, single_share=0.25, natural_gaps=True)
    mixed = WindowDataset(loaded, examples, "transcribe", True, seed=0, mix=mix)
    speech = len(plain)
    assert len(mixed) == speech + round(0.5 * speech) + round(0.25 * speech)
    end = loaded.processor.tokenizer.eos_token_id
    prefix_and_end = [*W.label_prefix(loaded, "en", "transcribe"), end]
    for epoch in (0, 1):
        mixed.set_epoch(epoch)
        assert len(mixed) == speech + round(0.5 * speech) + round(0.25 * speech)
        probes = [i for i, w in enumerate(mixed.windows) if w[0].clip is not None]
        assert len(probes) == round(0.5 * speech)
        for i in probes:
            item = mixed[i]
            assert item["labels"] == prefix_and_end  # an empty transcript, no timestamps
        utterances = sorted(ex.row.id for w in mixed.windows for ex in w if ex.clip is None)
        assert utterances == sorted(ex.row.id for ex in examples)  # each once, none lost
        singles = [w for w in mixed.windows if len(w) == 1 and w[0].clip is None]
        assert len(singles) >= round(0.25 * speech)
    assert mixed.audio_seconds() == pytest.approx(plain.audio_seconds())  # probes: no speech


def test_natural_gaps_fit_the_window_and_carry_low_noise(tiny_whisper: Path) -> None:
    import numpy as np

    from asrtune.data.audio import SAMPLE_RATE
    from asrtune.data.manifest import Row
    from asrtune.data.nonspeech import NonspeechClip
    from asrtune.data.windows import Example, TrainingMix, plan_window, window_audio

    mix = TrainingMix(natural_gaps=True)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        durations = list(rng.uniform(0.5, 8.0, size=int(rng.integers(1, 6))))
        plan = plan_window(durations, 30.0, mix, rng)
        assert plan.lead_in >= 0 and all(g >= 0 for g in plan.gaps)
        assert sum(durations) + plan.lead_in + sum(plan.gaps) <= 30.0 + 1e-9
    tight = plan_window([14.9, 14.9], 30.0, mix, np.random.default_rng(0))
    assert tight.lead_in + sum(tight.gaps) <= 0.2 + 1e-9  # shrunk to the room left
    quiet = [
        Example(Row(f"s{i}", "-", "", None, 1.0), None, 0, NonspeechClip("silence", 1.0, i))
        for i in range(2)
    ]
    audio, spans = window_audio(quiet, plan_window([1.0, 1.0], 30.0, mix, np.random.default_rng(3)))
    start, end = spans[0][1], spans[1][0]
    gap = audio[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]
    rms = float(np.sqrt(np.mean(gap**2)))
    assert len(gap) > 0.05 * SAMPLE_RATE and 1e-5 < rms < 1e-2  # low noise, not zeros
