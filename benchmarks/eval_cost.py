"""Where evaluation time goes on a CPU: the encoder's 30-s window per clip against the whole
of generation, and CTranslate2 (float32, int8) against asrtune's transformers path.

    python benchmarks/eval_cost.py --model asrtune-demo/model \\
        --manifest asrtune-demo/data/test/manifest.jsonl --clips 32 [--ct2]

Prints seconds (wall) for the encoder alone and for ``generate``; with ``--ct2``, the
process CPU seconds of each decoder on the same speech clips (one thread each) and how many
hypotheses equal transformers'. Results: docs/benchmarks.md, "The demo".
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from asrtune.data.audio import load_audio
from asrtune.models import load_model
from asrtune.models import whisper as W


def speech_clips(manifest: Path, count: int) -> list:
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows = [r for r in rows if r["text"].strip()][:count]
    return [load_audio(str(manifest.parent / r["audio_path"])) for r in rows]


def encoder_and_generate(loaded, audios) -> tuple[float, float]:
    """Seconds for the encoder alone (CPU slices, as generate runs it) and for generate."""
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(audios), 16):
            features, _ = W._features(loaded, audios[i : i + 16])
            W._encode_in_slices(loaded.model.get_encoder(), features)
    encoder = time.perf_counter() - start
    start = time.perf_counter()
    W.generate(loaded, audios, None, "transcribe", precision="fp32")
    return encoder, time.perf_counter() - start


def ct2_against_transformers(model: str, loaded, audios) -> None:
    from asrtune.api import export
    from asrtune.publish.exported import transcribe_ct2

    torch.set_num_threads(1)
    start = time.process_time()
    reference = W.generate(loaded, audios, None, "transcribe", precision="fp32")
    print(f"transformers fp32: {time.process_time() - start:.1f} CPU-s")
    for quantization in ("float32", "int8"):
        folder = Path(tempfile.mkdtemp()) / quantization
        export(model, "ct2", folder, quantization=quantization)
        start = time.process_time()
        texts = transcribe_ct2(loaded, folder, audios, [None] * len(audios), "transcribe", 448)
        same = sum(str(a) == str(b) for a, b in zip(reference, texts, strict=True))
        seconds = time.process_time() - start
        print(f"ct2 {quantization}: {seconds:.1f} CPU-s, {same}/{len(audios)} same text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--ct2", action="store_true", help="also compare CTranslate2")
    args = parser.parse_args()
    loaded = load_model(args.model)
    loaded.model.eval()
    audios = speech_clips(args.manifest, args.clips)
    encoder, generate = encoder_and_generate(loaded, audios)
    print(f"{len(audios)} clips: encoder {encoder:.1f} s, generate {generate:.1f} s")
    if args.ct2:
        ct2_against_transformers(args.model, loaded, audios)


if __name__ == "__main__":
    main()
