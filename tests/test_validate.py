"""Data validation: every reason a row is invalid, over a model's limits, or warned about."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrtune.data.manifest import BadRow, Row, read_manifest
from asrtune.data.validate import (
    MAX_CHARS_PER_SECOND,
    SILENCE_PEAK,
    check_audio,
    tokenizer_warning,
    validate_rows,
)
from asrtune.data_check import check_manifest
from asrtune.errors import AsrtuneError
from tests.conftest import tone

TEXT = "please restart the gateway"  # 26 characters


def write_manifest_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def row_line(audio: str, text: str = TEXT, **extra: str) -> str:
    return json.dumps({"audio_path": audio, "text": text, **extra})


def make_broken_dataset(folder: Path) -> tuple[Path, dict[int, str]]:
    """A manifest with one broken row per reason; returns it and {line: expected reason}."""
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "ok.wav", tone(2.0, 220), 16000)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(200)))
    sf.write(folder / "full.wav", tone(2.0, 330), 16000, subtype="PCM_16")
    data = (folder / "full.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    sf.write(folder / "zero.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(folder / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    nan = tone(1.0, 440)
    nan[100:200] = np.nan
    sf.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    inf = tone(1.0, 470)
    inf[5] = np.inf
    sf.write(folder / "inf.wav", inf, 16000, subtype="FLOAT")
    expected = {
        1: "",  # valid
        2: "audio file not found",
        3: "unreadable audio",
        4: "truncated audio",
        5: "audio has zero samples",
        6: "silent audio",
        7: "audio has NaN or infinite samples",
        8: "audio has NaN or infinite samples",
        9: "empty text (allowed in evaluation sets only)",
        10: "malformed JSON",
        11: "not valid UTF-8",
        12: "no text column",
    }
    lines: list[str | bytes] = [
        row_line("ok.wav"),
        row_line("missing.wav"),
        row_line("corrupt.wav"),
        row_line("truncated.wav"),
        row_line("zero.wav"),
        row_line("silent.wav"),
        row_line("nan.wav"),
        row_line("inf.wav"),
        row_line("ok.wav", text="   "),
        '{"audio_path": "ok.wav", "text": ',
        b'{"audio_path": "ok.wav", "text": "caf\xe9"}',
        json.dumps({"audio_path": "ok.wav"}),
    ]
    return write_manifest_lines(folder / "manifest.jsonl", lines), expected


def test_every_broken_row_is_reported_with_its_line(tmp_path: Path) -> None:
    manifest, expected = make_broken_dataset(tmp_path)
    report = check_manifest(manifest, progress=False)
    reasons = {p.line: p.reason for p in report.problems}
    assert set(reasons) == {line for line, reason in expected.items() if reason}
    for line, reason in expected.items():
        if reason:
            assert reasons[line].startswith(reason) or reason in reasons[line], (line, reasons)
    assert report.num_rows == 12 and report.num_valid == 1 and report.num_invalid == 11
    assert not report.ok
    assert [p.line for p in report.problems] == sorted(reasons)  # sorted by line
    assert reasons[2] == "audio file not found"
    assert "declares" in reasons[4]
    # the valid row comes back with its measured duration
    assert report.rows[0].duration == pytest.approx(2.0) and report.rows[0].line == 1
    assert report.within_limits == report.rows


def test_report_dict_shape(tmp_path: Path) -> None:
    manifest, _ = make_broken_dataset(tmp_path)
    data = check_manifest(manifest, progress=False).as_dict()
    assert set(data) == {
        "num_rows",
        "num_valid",
        "num_invalid",
        "problems",
        "over_limits",
        "warnings",
    }
    assert all(set(p) == {"line", "audio_path", "reason"} for p in data["problems"])
    missing = next(p for p in data["problems"] if p["line"] == 2)
    assert missing["audio_path"] == str(tmp_path.resolve() / "missing.wav")
    json.dumps(data)  # serializable


def test_truncated_wav_is_what_soundfile_silently_clamps(tmp_path: Path) -> None:
    """libsndfile reads a WAV cut in half without error (fewer frames): only the header
    comparison catches it, and a complete file passes."""
    sf.write(tmp_path / "a.wav", tone(1.0, 300), 16000)
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:-1000])
    assert sf.info(str(tmp_path / "cut.wav")).frames < 16000  # soundfile: no error
    assert check_audio(tmp_path / "cut.wav").problem.startswith("truncated audio")
    assert check_audio(tmp_path / "a.wav").problem is None
    assert check_audio(tmp_path / "cut.wav", data=data[:-1000]).problem.startswith("truncated")


def test_truncated_flac_is_unreadable(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.flac", tone(2.0, 300), 16000)
    data = (tmp_path / "a.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    problem = check_audio(tmp_path / "cut.flac").problem
    assert problem is not None and problem.startswith(("unreadable", "truncated"))


def test_quiet_but_audible_audio_is_valid(tmp_path: Path) -> None:
    sf.write(tmp_path / "quiet.wav", tone(1.0, 300) * 0.003, 16000)  # ~ -50 dBFS
    assert check_audio(tmp_path / "quiet.wav").problem is None
    just_below = np.full(16000, SILENCE_PEAK * 0.9, dtype=np.float32)
    sf.write(tmp_path / "dither.wav", just_below, 16000, subtype="FLOAT")
    assert check_audio(tmp_path / "dither.wav").problem.startswith("silent audio")


FORMATS = [
    ("u8.wav", {"subtype": "PCM_U8"}, 16000, 1),
    ("s16.wav", {"subtype": "PCM_16"}, 16000, 1),
    ("s24.wav", {"subtype": "PCM_24"}, 22050, 1),
    ("s32.wav", {"subtype": "PCM_32"}, 8000, 1),
    ("f32.wav", {"subtype": "FLOAT"}, 16000, 1),
    ("f64.wav", {"subtype": "DOUBLE"}, 16000, 1),
    ("stereo44k.wav", {"subtype": "PCM_16"}, 44100, 2),
    ("six_channels.wav", {"subtype": "PCM_16"}, 48000, 6),
    ("a.flac", {}, 16000, 1),
    ("a24.flac", {"subtype": "PCM_24"}, 48000, 2),
    ("a.ogg", {"format": "OGG", "subtype": "VORBIS"}, 16000, 1),
    ("a.opus", {"format": "OGG", "subtype": "OPUS"}, 48000, 1),
    ("a.mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"}, 44100, 2),
]


def test_every_supported_format_is_valid(tmp_path: Path) -> None:
    lines = []
    for i, (name, kwargs, rate, channels) in enumerate(FORMATS):
        sf.write(tmp_path / name, tone(1.5, 200 + 37 * i, rate, channels), rate, **kwargs)
        lines.append(row_line(name))
    manifest = write_manifest_lines(tmp_path / "m.jsonl", lines)
    report = check_manifest(manifest, progress=False)
    assert report.problems == [] and report.warnings == [], report.as_dict()
    assert report.num_valid == len(FORMATS)
    for row in report.rows:
        assert row.duration == pytest.approx(1.5, abs=0.06), row.audio_path  # mp3 pads


def test_duplicate_audio_is_a_warning_by_content(tmp_path: Path) -> None:
    """The same samples in another file (even another lossless container) are duplicates."""
    pcm = (tone(2.0, 250) * 32767).astype(np.int16)
    sf.write(tmp_path / "a.wav", pcm, 16000, subtype="PCM_16")
    sf.write(tmp_path / "b.flac", pcm, 16000, subtype="PCM_16")
    sf.write(tmp_path / "c.wav", tone(2.0, 260), 16000, subtype="PCM_16")
    lines = [row_line("a.wav"), row_line("c.wav"), row_line("b.flac"), row_line("a.wav")]
    report = check_manifest(write_manifest_lines(tmp_path / "m.jsonl", lines), progress=False)
    assert report.ok and report.num_valid == 4
    assert [(w.line, w.reason) for w in report.warnings] == [
        (3, "duplicate audio: same content as line 1"),
        (4, "duplicate audio: same content as line 1"),
    ]


def test_text_too_long_for_its_audio_is_a_warning(tmp_path: Path) -> None:
    sf.write(tmp_path / "short.wav", tone(0.5, 250), 16000)
    sf.write(tmp_path / "normal.wav", tone(2.0, 300), 16000)
    long_text = "x" * int(MAX_CHARS_PER_SECOND * 0.5 + 5)
    lines = [row_line("short.wav", text=long_text), row_line("normal.wav")]
    report = check_manifest(write_manifest_lines(tmp_path / "m.jsonl", lines), progress=False)
    assert report.ok and report.num_valid == 2
    assert len(report.warnings) == 1 and report.warnings[0].line == 1
    assert report.warnings[0].reason.startswith("text too long for its audio")


def test_over_the_limits_of_a_model(tiny_whisper: Path, tmp_path: Path) -> None:
    from asrtune.models import load_model

    loaded = load_model(str(tiny_whisper))
    limits = loaded.adapter.limits(loaded)
    assert (limits.max_seconds, limits.max_label_tokens) == (30.0, 64)
    sf.write(tmp_path / "long.wav", tone(31.0, 200), 16000)
    sf.write(tmp_path / "ten.wav", tone(10.0, 230), 16000)
    sf.write(tmp_path / "ok.wav", tone(2.0, 260), 16000)
    many_words = " ".join(f"zq{i}x" for i in range(40))  # ~200 characters, > 64 tokens
    assert len(loaded.adapter.encode_labels(loaded, [many_words], "en", "transcribe")) > 64
    lines = [
        row_line("long.wav", language="en"),
        row_line("ten.wav", text=many_words, language="en"),
        row_line("ok.wav", language="en"),
        row_line("ok.wav", text="no language here"),  # multilingual model: needs one
    ]
    manifest = write_manifest_lines(tmp_path / "m.jsonl", lines)
    report = check_manifest(manifest, model=str(tiny_whisper), progress=False)
    assert [p.line for p in report.over_limits] == [1, 2]
    assert report.over_limits[0].reason == "audio 31.0 s > 30 s"
    assert report.over_limits[1].reason.endswith("label tokens > 64")
    # over-limit rows are valid, but not within the limits
    assert report.num_valid == 3 and [r.line for r in report.within_limits] == [3]
    assert [(p.line, "needs a language" in p.reason) for p in report.problems] == [(4, True)]
    # --language fills rows without one; an unknown one is a user error up front
    filled = check_manifest(manifest, model=str(tiny_whisper), language="en", progress=False)
    assert filled.ok and filled.num_valid == 4
    with pytest.raises(AsrtuneError, match="does not know the language"):
        check_manifest(manifest, model=str(tiny_whisper), language="xx", progress=False)
    # without a model, nothing is over any limit
    assert check_manifest(manifest, progress=False).over_limits == []


def test_tokenizer_roundtrip_warning(tiny_whisper: Path) -> None:
    from asrtune.models import load_model

    tokenizer = load_model(str(tiny_whisper)).processor.tokenizer
    for text in ("hello world", "Grüße, ça va ? 你好 🙂", "a  b"):
        assert tokenizer_warning(tokenizer, text) is None  # byte-level BPE: everything

    class AsciiTokenizer:
        """Drops what is not ASCII, as a tokenizer with a small alphabet would."""

        unk_token_id = 0
        eos_token_id = 1

        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [ord(c) if ord(c) < 128 else 0 for c in text]

        def decode(self, ids: list[int], **kwargs: object) -> str:
            return "".join(chr(i) for i in ids if i)

    assert tokenizer_warning(AsciiTokenizer(), "plain") is None
    assert tokenizer_warning(AsciiTokenizer(), "café ñ") == "the tokenizer cannot represent 'éñ'"


def test_validate_rows_takes_rows_from_any_source(tmp_path: Path) -> None:
    """Rows that carry their encoded audio (Hub datasets) are decoded from the bytes."""
    sf.write(tmp_path / "a.flac", tone(1.25, 300), 16000)
    data = (tmp_path / "a.flac").read_bytes()
    rows = [
        Row(id="a", audio_path="a.flac", text="hello", line=1, audio_bytes=data),
        Row(id="b", audio_path="b.flac", text="hello", line=2, audio_bytes=b"garbage"),
        Row(id="c", audio_path=str(tmp_path / "a.flac"), text="hi there", line=3, duration=9.0),
    ]
    bad = [BadRow(4, None, "malformed JSON: x")]
    report = validate_rows(rows, bad, progress=False, source="hub")
    assert report.num_rows == 4 and report.num_valid == 2 and report.num_invalid == 2
    assert [r.duration for r in report.rows] == [pytest.approx(1.25)] * 2  # measured
    assert [p.line for p in report.problems] == [2, 4]
    assert report.problems[0].reason.startswith("unreadable audio")
    assert [w.line for w in report.warnings] == [3]  # same samples as row 1
    assert report.summary().startswith("hub: 4 rows, 2 valid, 2 invalid")


def test_same_file_is_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asrtune.data.validate as validate

    sf.write(tmp_path / "a.wav", tone(1.0, 300), 16000)
    calls = []
    original = validate.check_audio
    monkeypatch.setattr(validate, "check_audio", lambda *a: calls.append(a) or original(*a))
    rows = [Row(id=str(i), audio_path=str(tmp_path / "a.wav"), text="x y", line=i) for i in (1, 2)]
    report = validate_rows(rows, progress=False)
    assert len(calls) == 1 and report.num_valid == 2


def test_manifest_rows_keep_their_lines_for_csv(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(1.0, 300), 16000)
    (tmp_path / "m.csv").write_text("path,text\na.wav,hello\nnone.wav,hi\n")
    report = check_manifest(tmp_path / "m.csv", progress=False)
    assert [(p.line, p.reason) for p in report.problems] == [(3, "audio file not found")]


def test_copied_folder_is_independent(tmp_path: Path) -> None:
    """Relative paths resolve against the manifest's folder wherever it is."""
    manifest, _ = make_broken_dataset(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    report = check_manifest(tmp_path / "b" / manifest.name, progress=False)
    assert report.rows[0].audio_path.startswith(str((tmp_path / "b").resolve()))
    assert read_manifest(tmp_path / "b" / manifest.name).rows[0].line == 1


def test_check_results_are_cached_by_path_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import soundfile as sf

    from asrtune.data.validate import check_audio
    from tests.conftest import tone

    monkeypatch.setenv("ASRTUNE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "a.wav"
    sf.write(path, tone(1.0, 300), 16000)
    first = check_audio(path)
    assert first.problem is None and (tmp_path / "cache" / "audio_checks.sqlite").is_file()
    stat = os.stat(path)
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)  # now silent, same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert check_audio(path) == first  # served from the cache: no decoding happened
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert "silent" in (check_audio(path).problem or "")  # a changed file is checked again


def test_checks_of_audio_bytes_are_cached_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    import soundfile as sf

    from asrtune.data import validate
    from tests.conftest import tone

    def encoded(audio: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        sf.write(buffer, audio, 16000, format="WAV")
        return buffer.getvalue()

    monkeypatch.setenv("ASRTUNE_CACHE", str(tmp_path / "cache"))
    decoded: list[bytes | None] = []
    real = validate._check_audio
    monkeypatch.setattr(
        validate, "_check_audio", lambda path, data: decoded.append(data) or real(path, data)
    )
    sound, silence = encoded(tone(1.0, 300)), encoded(np.zeros(16000, dtype=np.float32))
    assert validate.check_audio("hub/row1.wav", sound).problem is None
    assert validate.check_audio("hub/other-name.wav", sound).problem is None  # same bytes
    assert "silent" in (validate.check_audio("hub/row1.wav", silence).problem or "")
    assert decoded == [sound, silence]
