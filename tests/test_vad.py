"""Voice activity detection: chunking speech at pauses (pure), silero-vad on generated audio,
and --vad through the CLI on a tiny Whisper."""

from __future__ import annotations

import json
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrtune.cli import main
from asrtune.data.audio import SAMPLE_RATE
from asrtune.vad import decode_speech, merge_regions, split_span


def S(seconds: float) -> int:
    """Seconds → samples at 16 kHz."""
    return int(seconds * SAMPLE_RATE)


# --------------------------------------------------------------------------- pure helpers


def test_regions_merge_into_chunks_of_at_most_a_window_cut_at_pauses() -> None:
    regions = [(S(1), S(5)), (S(6), S(20)), (S(22), S(29)), (S(32), S(40)), (S(41), S(45))]
    assert merge_regions(regions, S(30)) == [(S(1), S(29)), (S(32), S(45))]
    assert merge_regions([], S(30)) == []


def test_a_region_over_a_window_is_cut_and_padded_regions_do_not_overlap() -> None:
    assert split_span((0, S(70)), S(30)) == [(0, S(30)), (S(30), S(60)), (S(60), S(70))]
    assert merge_regions([(0, S(70))], S(30)) == [(0, S(30)), (S(30), S(60)), (S(60), S(70))]
    assert merge_regions([(0, S(20)), (S(19), S(40))], S(30)) == [(0, S(20)), (S(20), S(40))]
    assert merge_regions([(0, S(20)), (S(5), S(10))], S(30)) == [(0, S(20))]


def test_decode_speech_batches_chunks_with_offsets_and_skips_inputs_without_speech() -> None:
    audios = [
        np.zeros(S(3), np.float32),
        np.arange(S(70), dtype=np.float32),  # each sample holds its own index
        np.zeros(S(2), np.float32),
    ]

    def chunker(audio: np.ndarray, window: float) -> list[tuple[int, int]]:
        assert window == 30.0
        return [(S(1), S(2)), (S(35), S(60)), (S(61), S(62))] if audio.any() else []

    calls: list[list[int]] = []

    def decode(clips: list[np.ndarray]) -> list[int]:
        calls.append([len(c) for c in clips])
        return [int(c[0]) for c in clips]  # where the clip starts

    results = decode_speech(audios, 30.0, 2, decode, chunker)
    assert results[0] == [] and results[2] == []
    assert results[1] == [(1.0, S(1)), (35.0, S(35)), (61.0, S(61))]
    assert calls == [[S(1), S(25)], [S(1)]]
    assert decode_speech([audios[0]], 30.0, 2, decode, chunker) == [[]]
    assert len(calls) == 2  # no speech: decode is never called


# --------------------------------------------------------------------------- silero


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 4 s of espeak-ng speech, 16 kHz."""
    pytest.importorskip("espeakng_loader")
    from asrtune.data.synth import synthesize

    return synthesize("please restart the gateway on the main cluster before nine thirty")


def test_loading_silero_keeps_the_torch_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("silero_vad")
    from asrtune.vad import load_vad_model

    for name in [m for m in sys.modules if m.startswith("silero_vad")]:
        monkeypatch.delitem(sys.modules, name)  # its import sets torch to one thread
    load_vad_model.cache_clear()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert load_vad_model() is not None
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
        load_vad_model.cache_clear()


def test_silero_hears_speech_but_not_silence_noise_or_hum(speech: np.ndarray) -> None:
    pytest.importorskip("silero_vad")
    from asrtune.vad import speech_chunks

    rng = np.random.default_rng(0)
    t = np.arange(S(6)) / SAMPLE_RATE
    for quiet in (
        np.zeros(S(6), np.float32),
        (0.01 * rng.standard_normal(S(6))).astype(np.float32),
        (0.1 * np.sin(2 * np.pi * 50 * t)).astype(np.float32),
    ):
        assert speech_chunks(quiet, 30.0) == []
    gap = np.zeros(S(2), np.float32)
    audio = np.concatenate([gap, speech, gap])
    (chunk,) = speech_chunks(audio, 30.0)
    assert S(1.0) <= chunk[0] <= S(2.2)
    assert S(2) + len(speech) - S(0.5) <= chunk[1] <= len(audio)
    # 70 s of sentences and pauses: chunks of at most one window, in order, at pauses
    long = np.concatenate([gap[: S(1.5)], speech] * (S(70) // (len(speech) + S(1.5)) + 1))
    chunks = speech_chunks(long, 30.0)
    assert len(chunks) >= 3
    assert all(0 < end - start <= S(30) for start, end in chunks)
    assert all(a[1] <= b[0] for a, b in pairwise(chunks))


# --------------------------------------------------------------------------- --vad


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_vad_gives_silence_no_text_and_decodes_speech_at_its_offset(
    talkative_whisper: Path, speech: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("silero_vad")
    from asrtune.vad import speech_chunks

    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(S(4), np.float32), SAMPLE_RATE)
    late = np.concatenate([np.zeros(S(3), np.float32), speech])
    spoken = tmp_path / "late.wav"
    sf.write(spoken, late, SAMPLE_RATE)
    argv = ["transcribe", "--model", str(talkative_whisper), "--language", "en"]
    argv += ["--format", "json", str(silence), str(spoken)]

    assert main([*argv, "--vad"]) == 0
    quiet, talk = _json_lines(capsys.readouterr().out)
    assert quiet["text"] == "" and quiet["segments"] == []
    (first, _end), *_ = speech_chunks(late, 30.0)
    assert first > S(2)
    assert talk["segments"], "the talkative model says something for speech"
    assert all(s["start"] >= first / SAMPLE_RATE - 1e-3 for s in talk["segments"])
    assert all(s["end"] <= talk["duration"] for s in talk["segments"])
    assert talk["text"] == " ".join(s["text"] for s in talk["segments"])
    # the talkative model says something for silence, unless VAD finds no speech there
    assert main([*argv[:-4], str(silence)]) == 0
    assert capsys.readouterr().out.strip()
    assert main([*argv[:-4], "--vad", str(silence)]) == 0
    assert capsys.readouterr().out == "\n"


def test_eval_with_vad_scores_empty_hypotheses_for_audio_without_speech(
    talkative_whisper: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("silero_vad")
    hiss = 0.003 * np.random.default_rng(0).standard_normal(S(2))  # no speech, not silent
    sf.write(tmp_path / "a.wav", hiss.astype(np.float32), SAMPLE_RATE)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_path": "a.wav", "text": "hello", "language": "en"}))
    argv = ["eval", "--model", str(talkative_whisper), "--manifest", str(manifest)]
    argv += ["--output", str(tmp_path / "report.json")]
    hypotheses = []
    for vad in ([], ["--vad"]):
        assert main([*argv, *vad]) == 0
        (row,) = _json_lines((tmp_path / "report.utterances.jsonl").read_text())
        hypotheses.append(row["hyp"])
    assert hypotheses[0] != "" and hypotheses[1] == ""
    capsys.readouterr()


def test_vad_without_silero_is_a_one_line_error(
    tiny_whisper_en: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from asrtune.vad import load_vad_model

    monkeypatch.setitem(sys.modules, "silero_vad", None)  # as if not installed
    load_vad_model.cache_clear()
    sf.write(tmp_path / "a.wav", np.zeros(S(1), np.float32), SAMPLE_RATE)
    try:
        assert (
            main(["transcribe", "--model", str(tiny_whisper_en), "--vad", str(tmp_path / "a.wav")])
            == 2
        )
    finally:
        load_vad_model.cache_clear()
    assert "--vad needs silero-vad: pip install 'asrtune[vad]'" in capsys.readouterr().err
