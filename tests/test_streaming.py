"""--streaming: a streamed manifest gives the rows a read gives; packed windows with
timestamps stay within the model's label limit."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import soundfile as sf

from asrtune.config import train_job_from_kwargs
from asrtune.data.manifest import BadRow, Row
from asrtune.data.sources import HubOptions, parse_source, read_source, stream_source
from asrtune.data.streaming import Stream, interleave
from asrtune.models import load_model
from asrtune.models import whisper as W
from asrtune.training_data import SkipLog, build_stream_dataset
from tests.conftest import tone


def _aliased_manifest(folder: Path, home: Path, suffix: str) -> Path:
    """A manifest using column aliases, a ``~`` path, a speaker column, a repeated id and
    a row with empty text (plus, for JSONL, a malformed line)."""
    (folder / "clips").mkdir(parents=True)
    (home / "clips").mkdir(parents=True)
    sf.write(folder / "clips" / "a.wav", tone(1.0, 220), 16000)
    sf.write(home / "clips" / "h.wav", tone(1.2, 330), 16000)
    records = [
        {"id": "a", "path": "clips/a.wav", "sentence": " Hello there ", "lang": "en"},
        {"id": "a", "path": "~/clips/h.wav", "sentence": "again", "client_id": "spk2"},
        {"id": "c", "path": "clips/a.wav", "sentence": "", "lang": "en"},
        {"id": "d", "path": str(home / "clips" / "h.wav"), "sentence": "last", "lang": "de"},
    ]
    manifest = folder / f"m{suffix}"
    if suffix == ".csv":
        columns = ["id", "path", "sentence", "lang", "client_id"]
        with open(manifest, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(records)
    else:
        lines = [json.dumps(r) for r in records]
        lines.insert(2, "{not json")
        manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_streamed_manifest_gives_the_rows_a_read_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    manifest = _aliased_manifest(tmp_path / "data", home, suffix)
    read = read_source(str(manifest))
    assert [r.id for r in read.rows] == ["a", "a#1", "c", "d"]  # the case is what it claims
    assert read.rows[2].text == ""  # a non-speech probe (training's checks refuse it)
    assert read.rows[1].audio_path == str(home / "clips" / "h.wav")
    assert read.rows[1].speaker == "spk2"

    records, to_row = stream_source(parse_source(str(manifest)), HubOptions(streaming=True))
    shuffled = records.shuffle(seed=3, buffer_size=10)
    streamed = list(interleave([Stream(shuffled, to_row)], seed=0))
    rows = sorted((x for x in streamed if isinstance(x, Row)), key=lambda r: r.line or 0)
    bad = sorted((x for x in streamed if isinstance(x, BadRow)), key=lambda b: b.line)
    assert [asdict(r) for r in rows] == [asdict(r) for r in read.rows]
    assert bad == read.bad_rows


def test_a_streamed_manifest_streams_its_rows_reshuffled_each_epoch(tmp_path: Path) -> None:
    from tests.conftest import write_dataset

    manifest = write_dataset(tmp_path / "d", 12)
    records, to_row = stream_source(parse_source(str(manifest)), HubOptions(streaming=True))
    in_order = list(records)
    assert all(isinstance(r, Row) for r in in_order)  # the rows themselves, nothing to parse
    assert [to_row(r, 0) for r in in_order] == read_source(str(manifest)).rows
    shuffled = records.shuffle(seed=1, buffer_size=5)
    first = [r.id for r in shuffled]
    assert sorted(first) == sorted(r.id for r in in_order) and first != [r.id for r in in_order]
    assert [r.id for r in shuffled] == first  # the same epoch, the same order
    shuffled.set_epoch(1)
    assert [r.id for r in shuffled] != first


def _text_of(loaded: object, tokens: int) -> str:
    """A text of exactly ``tokens`` text tokens for ``loaded``'s tokenizer."""
    text = " ".join(["a"] * tokens)
    assert len(W.text_tokens(loaded, text)) == tokens
    return text


def test_streamed_windows_with_timestamps_stay_within_the_label_limit(
    tiny_whisper: Path, tmp_path: Path
) -> None:
    loaded = load_model(str(tiny_whisper))
    limit = W.limits(loaded).max_label_tokens  # 64; the packer's text budget is 60
    # two texts of 29 tokens pack into one window without their timestamps (58 <= 60),
    # but the window's labels are 3 + 2 * (29 + 2) = 65 with them; 60 tokens alone make
    # 64 labels without timestamps and 65 with them
    texts = {"p": _text_of(loaded, 29), "q": _text_of(loaded, 29), "big": _text_of(loaded, 60)}
    (tmp_path / "audio").mkdir()
    manifest = tmp_path / "m.jsonl"
    lines = []
    for i, (name, text) in enumerate(texts.items()):
        sf.write(tmp_path / "audio" / f"{name}.wav", tone(1.0, 200 + 50 * i), 16000)
        lines.append(json.dumps({"id": name, "audio_path": f"audio/{name}.wav", "text": text}))
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    job = train_job_from_kwargs(
        model=str(tiny_whisper),
        train_manifest=str(manifest),
        language="en",
        streaming=True,
        max_steps=1,
        timestamp_share=1.0,
        nonspeech_share=0.0,
        single_share=0.0,
        output_dir=str(out),
        report_to="none",
    )
    skips = SkipLog(out)
    windows = list(build_stream_dataset(job, loaded, skips))
    assert windows and all(len(w["labels"]) <= limit for w in windows)
    assert sorted(len(w["labels"]) for w in windows) == [34, 34]
    assert [(s["id"], s["reason"]) for s in skips.records()] == [
        ("big", f"65 label tokens > {limit}")
    ]
