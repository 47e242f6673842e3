"""Timed transcripts: segment tidying and the srt / vtt / json writers (pure functions)."""

from __future__ import annotations

import json

import pytest

from asrtune.transcripts import (
    FileTranscript,
    Segment,
    join_texts,
    render,
    shift_segments,
    tidy_segments,
    timestamp,
    to_srt,
    to_vtt,
)


def test_tidy_segments_are_in_order_within_the_audio_and_never_empty() -> None:
    raw = [
        (0.0, 1.5, " Hello "),
        (1.2, 2.0, "overlaps the first"),  # starts before the previous end
        (2.5, 2.2, "ends before it starts"),
        (3.0, 3.5, "   "),  # no text
        (4.0, None, "no end"),  # ends with the audio
        (9.0, 9.5, "after the audio"),  # said over padding
    ]
    segments = tidy_segments(raw, duration=6.0)
    assert segments == [
        Segment(0.0, 1.5, "Hello"),
        Segment(1.5, 2.0, "overlaps the first"),
        Segment(2.5, 2.5, "ends before it starts"),
        Segment(4.0, 6.0, "no end"),
    ]
    assert tidy_segments([(0.0, 40.0, "long")], duration=30.0) == [Segment(0.0, 30.0, "long")]


def test_shift_and_join() -> None:
    assert shift_segments([Segment(0.5, 1.0, "a")], 10.0) == [Segment(10.5, 11.0, "a")]
    assert join_texts([" a ", "", "b", "  "]) == "a b"


@pytest.mark.parametrize(
    ("seconds", "decimal", "expected"),
    [
        (0.0, ",", "00:00:00,000"),
        (3661.2345, ",", "01:01:01,234"),
        (59.9996, ".", "00:01:00.000"),
        (-0.1, ".", "00:00:00.000"),
    ],
)
def test_timestamp(seconds: float, decimal: str, expected: str) -> None:
    assert timestamp(seconds, decimal) == expected


SEGMENTS = [Segment(0.0, 2.5, "Hello there."), Segment(3.04, 65.5, "Two\n\nlines --> here")]


def test_srt_layout() -> None:
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n"
        "\n"
        "2\n00:00:03,040 --> 00:01:05,500\nTwo\nlines --> here\n"
    )


def test_vtt_layout() -> None:
    assert to_vtt(SEGMENTS) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\nHello there.\n"
        "\n"
        "00:00:03.040 --> 00:01:05.500\nTwo\nlines -> here\n"
    )


def test_render_json_and_text_and_a_transcript_without_times() -> None:
    item = FileTranscript("a.wav", "Hello there.", 2.71828, SEGMENTS[:1])
    data = json.loads(render(item, "json"))
    assert data == {
        "path": "a.wav",
        "text": "Hello there.",
        "duration": 2.718,
        "segments": [{"start": 0.0, "end": 2.5, "text": "Hello there."}],
    }
    assert render(item, "txt") == "Hello there.\n"
    untimed = FileTranscript("b.wav", "text only", 1.0)
    assert json.loads(render(untimed, "json"))["segments"] is None
    with pytest.raises(ValueError, match="srt needs segment times"):
        render(untimed, "srt")
    assert render(FileTranscript("c.wav", "", 1.0, []), "vtt") == "WEBVTT\n"
