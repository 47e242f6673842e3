"""espeak-ng synthesis and the demo corpus (espeakng-loader, from the dev extra)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrtune.data import synth
from asrtune.data.audio import SAMPLE_RATE
from asrtune.data.demo_corpus import (
    DEMO_PROBES,
    GUARD_SENTENCES,
    demo_sentences,
    make_demo_dataset,
)
from asrtune.data.synth import (
    VoiceStyle,
    list_languages,
    synthesize,
    synthesize_manifest,
    voice_variants,
)
from asrtune.errors import AsrtuneError

SENTENCE = "please restart the gateway on the main cluster before nine thirty"


def _rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def test_synthesize_returns_speech_at_16k() -> None:
    audio = synthesize(SENTENCE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = len(audio) / SAMPLE_RATE
    assert 2.0 < seconds < 8.0  # eleven words at 175 wpm ≈ 4 s
    assert np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio**2)) > 0.01  # not silent


def test_silence_is_trimmed_to_a_short_margin() -> None:
    audio = synthesize("hello there")
    margin = int(0.1 * SAMPLE_RATE)
    assert np.abs(audio[: margin - 10]).max() == 0.0
    assert np.abs(audio[margin : margin + SAMPLE_RATE // 2]).max() > 0.05


def test_different_voices_differ() -> None:
    a = synthesize(SENTENCE, voice="en-us+f2", rate_wpm=175, pitch=50)
    b = synthesize(SENTENCE, voice="en-us+m3", rate_wpm=150, pitch=35)
    assert len(a) != len(b) or not np.allclose(a, b)
    assert len(b) > len(a)  # slower speech is longer


def test_other_languages_and_variants() -> None:
    assert {"en", "en-us", "fr", "de"} <= set(list_languages())
    assert len(synthesize("guten Tag, wie geht es", voice="de+m3")) > SAMPLE_RATE // 2


@pytest.mark.parametrize("voice", ["xx-nowhere", "en-us+nosuchvariant"])
def test_unknown_voice_raises(voice: str) -> None:
    with pytest.raises(AsrtuneError):
        synthesize("hello", voice=voice)


def test_voice_variants_deterministic_and_varied() -> None:
    styles = voice_variants("en-us", 6, seed=3)
    assert styles == voice_variants("en-us", 6, seed=3)
    assert styles != voice_variants("en-us", 6, seed=4)
    assert all(isinstance(s, VoiceStyle) and s.voice.startswith("en-us+") for s in styles)
    assert len({s.voice for s in styles}) == 6
    assert all(140 <= s.rate_wpm <= 200 and 30 <= s.pitch <= 70 for s in styles)
    with pytest.raises(AsrtuneError):
        voice_variants("klingon", 2, seed=0)


def test_synthesize_manifest_writes_readable_wavs(tmp_path: Path) -> None:
    texts = ["the first test sentence", "a second one"]
    manifest = synthesize_manifest(texts, tmp_path, language="en-us", voices=2, progress=False)
    rows = _rows(manifest)
    assert len(rows) == 4  # every text in every voice
    assert len({r["id"] for r in rows}) == 4
    for row in rows:
        assert set(row) == {"id", "audio_path", "text", "language", "duration"}
        assert row["text"] in texts and row["language"] == "en"
        samples, rate = sf.read(tmp_path / row["audio_path"])
        assert rate == SAMPLE_RATE and samples.ndim == 1
        assert abs(len(samples) / rate - row["duration"]) < 1e-3


def test_synthesize_manifest_one_voice_per_text(tmp_path: Path) -> None:
    texts = ["one", "two", "three"]
    rows = _rows(synthesize_manifest(texts, tmp_path, voices=2, voices_per_text=1, progress=False))
    assert [r["text"] for r in rows] == texts
    with pytest.raises(AsrtuneError):
        synthesize_manifest(texts, tmp_path / "x", language="zz", progress=False)


def test_demo_sentences_deterministic_and_distinct() -> None:
    sentences = demo_sentences(200, seed=0)
    assert sentences == demo_sentences(200, seed=0)
    assert sentences != demo_sentences(200, seed=1)
    assert len(set(sentences)) == 200
    assert all(6 <= len(s.split()) <= 20 for s in sentences)
    assert all(s.replace(" ", "").isalpha() and s == s.lower() for s in sentences)


def test_make_demo_dataset_disjoint_and_reused(tmp_path: Path) -> None:
    train, test = make_demo_dataset(tmp_path, n_train=6, n_test=3, voices=2)
    train_rows, test_rows = _rows(train), _rows(test)
    assert len(train_rows) == 6 and len(test_rows) == 3 + DEMO_PROBES
    assert [r["text"] for r in test_rows[3:]] == [""] * DEMO_PROBES  # non-speech probes
    assert not {r["text"] for r in train_rows} & {r["text"] for r in test_rows}
    assert all((train.parent / r["audio_path"]).is_file() for r in train_rows)
    assert all((test.parent / r["audio_path"]).is_file() for r in test_rows)
    guard = _rows(tmp_path / "guard" / "manifest.jsonl")  # other voices, other topics
    assert [r["text"] for r in guard] == list(GUARD_SENTENCES)
    assert all((tmp_path / "guard" / r["audio_path"]).is_file() for r in guard)
    mtime = train.stat().st_mtime_ns
    assert make_demo_dataset(tmp_path, n_train=6, n_test=3, voices=2) == (train, test)
    assert train.stat().st_mtime_ns == mtime  # reused, not rebuilt
    make_demo_dataset(tmp_path, n_train=5, n_test=3, voices=2)
    assert len(_rows(train)) == 5  # other parameters rebuild


def _hang_while_marker_is_missing(conn: object) -> None:
    """A stand-in child: the first one (no marker file yet) never answers, like a hung
    espeak-ng; the next serves normally. ``ASRTUNE_TEST_HANG`` is ``MARKER[:always]``."""
    marker, _, mode = os.environ["ASRTUNE_TEST_HANG"].partition(":")
    if mode == "always" or not Path(marker).exists():
        Path(marker).touch()
        conn.send(("ready",))  # type: ignore[attr-defined]
        conn.recv()  # type: ignore[attr-defined]
        time.sleep(3600)
    synth._serve(conn)


def _start_slowly(conn: object) -> None:
    """A stand-in child that takes longer to start than a call may take (a spawned
    interpreter importing a heavy main module on a busy machine), then serves."""
    time.sleep(float(os.environ["ASRTUNE_TEST_START_SECONDS"]))
    synth._serve(conn)


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("espeakng_loader")
    monkeypatch.setattr(synth, "_CALL_SECONDS", 2.0)
    monkeypatch.setattr(synth, "_CALL_SECONDS_PER_CHAR", 0.0)


def test_a_hung_synthesis_is_restarted(
    short_deadline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASRTUNE_TEST_HANG", str(tmp_path / "hung"))
    process = synth._SynthProcess(target=_hang_while_marker_is_missing)
    pcm, rate = process.synth("restart the gateway", VoiceStyle("en", 175, 50))
    assert (tmp_path / "hung").exists() and len(pcm) > rate // 4  # answered after a restart
    process._stop()


def test_synthesis_that_keeps_hanging_is_a_clear_error(
    short_deadline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASRTUNE_TEST_HANG", f"{tmp_path / 'hung'}:always")
    monkeypatch.setattr(synth, "_ATTEMPTS", 2)
    process = synth._SynthProcess(target=_hang_while_marker_is_missing)
    with pytest.raises(AsrtuneError, match="espeak-ng failed 2 times"):
        process.synth("restart the gateway", VoiceStyle("en", 175, 50))


def test_a_slow_start_is_not_a_hang(
    short_deadline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASRTUNE_TEST_START_SECONDS", "3")  # the call deadline is 2 s
    monkeypatch.setattr(synth, "_ATTEMPTS", 1)
    process = synth._SynthProcess(target=_start_slowly)
    pcm, rate = process.synth("restart the gateway", VoiceStyle("en", 175, 50))
    assert len(pcm) > rate // 4
    process._stop()
