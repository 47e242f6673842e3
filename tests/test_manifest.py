"""Manifest reading: columns by name, relative paths, bad lines reported with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrtune.data.audio import SAMPLE_RATE, load_audio
from asrtune.data.manifest import read_manifest
from asrtune.data.rows import load_rows
from asrtune.errors import AsrtuneError
from tests.conftest import tone


def test_jsonl_columns_paths_and_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    lines = [
        json.dumps({"audio_path": "a.wav", "text": " hello ", "language": "en"}),
        json.dumps({"audio": {"path": "sub/b.wav"}, "sentence": "hi"}),
        "{not json",
        json.dumps({"audio_filepath": "c.wav", "text": "   "}),  # a non-speech probe
        "",
        json.dumps({"text": "no audio"}),
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe\n")
    parsed = read_manifest(manifest)
    assert [r.audio_path for r in parsed.rows] == [
        str(tmp_path / "a.wav"),
        str(tmp_path / "sub" / "b.wav"),
        str(tmp_path / "c.wav"),
    ]
    assert parsed.rows[2].text == ""
    assert parsed.rows[0].text == "hello" and parsed.rows[0].language == "en"
    assert parsed.rows[1].line == 2 and parsed.rows[1].language is None
    reasons = {b.line: b.reason for b in parsed.bad_rows}
    assert set(reasons) == {3, 6, 7}
    assert "malformed JSON" in reasons[3]
    assert "no audio column" in reasons[6]
    assert "UTF-8" in reasons[7]


def test_csv_and_tsv(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,transcript,lang\nx.wav,bonjour,fr\n")
    (tmp_path / "m.tsv").write_text("file\ttext\nx.wav\thallo\n")
    csv_rows = read_manifest(tmp_path / "m.csv").rows
    assert csv_rows[0].text == "bonjour" and csv_rows[0].language == "fr"
    assert csv_rows[0].line == 2
    assert read_manifest(tmp_path / "m.tsv").rows[0].text == "hallo"


def test_missing_and_unknown_manifest(tmp_path: Path) -> None:
    with pytest.raises(AsrtuneError, match="not found"):
        read_manifest(tmp_path / "none.jsonl")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(AsrtuneError, match="unknown manifest format"):
        read_manifest(tmp_path / "m.txt")


def test_load_rows_probes_audio(tmp_path: Path) -> None:
    sf.write(tmp_path / "ok.wav", tone(1.0, 300), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF garbage")
    rows = [
        {"audio_path": "ok.wav", "text": "a"},
        {"audio_path": "missing.wav", "text": "b"},
        {"audio_path": "broken.wav", "text": "c"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    loaded = load_rows(manifest, language="de")
    assert len(loaded.rows) == 1 and loaded.rows[0].duration == pytest.approx(1.0)
    assert loaded.rows[0].language == "de"
    assert [(b.line, b.reason.split(":")[0]) for b in loaded.invalid] == [
        (2, "audio file not found"),
        (3, "unreadable audio"),
    ]


@pytest.mark.parametrize("fmt,subtype", [("wav", "PCM_24"), ("flac", "PCM_16"), ("ogg", "VORBIS")])
def test_audio_any_rate_and_channels_to_16k_mono(tmp_path: Path, fmt: str, subtype: str) -> None:
    path = tmp_path / f"x.{fmt}"
    stereo = tone(2.0, 440, rate=44100, channels=2)
    sf.write(path, stereo, 44100, subtype=subtype, format=fmt.upper())
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 2 * SAMPLE_RATE) < 200
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(audio) - 440) < 5


def test_a_duration_that_is_no_number_is_a_bad_row(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"audio_path": "a.wav", "text": "hi", "duration": "long"},
        {"audio_path": "b.wav", "text": "yo", "duration": "2.5"},
    ]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    read = read_manifest(manifest)
    assert [r.duration for r in read.rows] == [2.5]
    assert [(b.line, b.reason) for b in read.bad_rows] == [
        (1, "duration is not a number of seconds: 'long'")
    ]
