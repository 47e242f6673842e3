"""Timed transcripts: segments, and writers for SubRip (.srt), WebVTT (.vtt) and JSON.

Pure functions over plain data; times are seconds from the start of the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

FORMATS = ("txt", "srt", "vtt", "json")
TIMED_FORMATS = ("srt", "vtt")  # formats that need segment times


@dataclass(frozen=True)
class Segment:
    """A stretch of speech: ``start`` and ``end`` in seconds from the file's start."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class FileTranscript:
    """One file's transcript: its text, its duration in seconds and, when the model gives
    times, its segments (None when it does not)."""

    path: str
    text: str
    duration: float
    segments: list[Segment] | None = None

    def as_dict(self) -> dict:
        """``{"path", "duration", "text", "segments": [{"start", "end", "text"}] | None}``."""
        out = asdict(self)
        out["duration"] = round(self.duration, 3)
        if self.segments is not None:
            out["segments"] = [
                {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
                for s in self.segments
            ]
        return out


def tidy_segments(raw: Sequence[tuple[float, float | None, str]], duration: float) -> list[Segment]:
    """Segments from ``(start, end, text)`` as a model gave them, made safe to write out:
    text stripped, empty ones dropped, times within ``[0, duration]`` seconds, each
    starting no earlier than the previous one ended, and ending no earlier than it starts.
    A segment without an end (``None``) ends at ``duration``; one that starts at or after
    ``duration`` (said over the padding after the audio) is dropped."""
    segments: list[Segment] = []
    previous_end = 0.0
    for start, end, text in raw:
        text = text.strip()
        if not text or float(start) >= duration:
            continue
        start = min(max(float(start), previous_end), duration)
        end = duration if end is None else min(max(float(end), start), duration)
        segments.append(Segment(start, end, text))
        previous_end = end
    return segments


def shift_segments(segments: Sequence[Segment], offset: float) -> list[Segment]:
    """``segments`` moved ``offset`` seconds later (a chunk's segments → file times)."""
    return [Segment(s.start + offset, s.end + offset, s.text) for s in segments]


def join_texts(texts: Sequence[str]) -> str:
    """Pieces of one transcript joined by single spaces; empty pieces dropped."""
    return " ".join(t.strip() for t in texts if t.strip())


def timestamp(seconds: float, decimal: str = ".") -> str:
    """``HH:MM:SS.mmm`` (``decimal=","`` gives SubRip's ``HH:MM:SS,mmm``)."""
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cue_text(text: str) -> str:
    """Cue text with no blank line inside (a blank line ends a cue in SRT and VTT)."""
    return "\n".join(line for line in text.splitlines() if line.strip())


def to_srt(segments: Sequence[Segment]) -> str:
    """SubRip: numbered cues ``1\\n00:00:00,000 --> 00:00:02,500\\ntext\\n`` separated by
    blank lines."""
    cues = [
        f"{i}\n{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}\n{_cue_text(s.text)}\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(cues)


def to_vtt(segments: Sequence[Segment]) -> str:
    """WebVTT: a ``WEBVTT`` header, then cues ``00:00:00.000 --> 00:00:02.500\\ntext``."""
    cues = [
        f"{timestamp(s.start)} --> {timestamp(s.end)}\n{_cue_text(s.text.replace('-->', '->'))}\n"
        for s in segments
    ]
    return "\n".join(["WEBVTT\n", *cues])


def to_json(transcript: FileTranscript, indent: int | None = 2) -> str:
    """The transcript as a JSON object (see :meth:`FileTranscript.as_dict`)."""
    return json.dumps(transcript.as_dict(), ensure_ascii=False, indent=indent)


def render(transcript: FileTranscript, fmt: str) -> str:
    """``transcript`` in ``fmt`` (one of :data:`FORMATS`), ending with a newline.
    srt and vtt need segments."""
    if fmt == "txt":
        return transcript.text + "\n"
    if fmt == "json":
        return to_json(transcript) + "\n"
    if transcript.segments is None:
        raise ValueError(f"{fmt} needs segment times; {transcript.path} has none")
    return to_srt(transcript.segments) if fmt == "srt" else to_vtt(transcript.segments)
