"""Does packing several utterances into one training item help Moonshine? Training
throughput (audio seconds per second of forward + backward + AdamW step) of the real
moonshine-tiny architecture (random weights, :func:`asrtune.models.tiny_moonshine.
make_tiny_moonshine` size ``moonshine-tiny``) on the same audio, as one item per utterance
or packed into windows of up to 30 s (0.4-s gaps), batches collated by the adapter's own
``collate``. Utterances are noise of ``--seconds`` each with 4 label tokens per second.

    python benchmarks/moonshine_packing.py --seconds 2 5 10 --audio-per-step 60 --steps 3

Plain and packed are measured alternately ``--rounds`` times; the best of each counts.

Whisper gains from packing because every item is padded to 30 s; Moonshine reads raw audio
of any length, so packing only trades batch padding and per-item overhead against the
encoder's attention, which grows with the square of an item's length.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from asrtune.models import load_model
from asrtune.models import moonshine as M
from asrtune.models.tiny_moonshine import make_tiny_moonshine

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30.0
GAP_SECONDS = 0.4
TOKENS_PER_SECOND = 4


def _item(seconds: float, tokens: int, rng: np.random.Generator) -> dict:
    labels = [*rng.integers(3, 300, tokens).tolist(), 2]
    return {
        "input_values": (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32),
        "labels": labels,
        "decoder_input_ids": [1, *labels[:-1]],
    }


def batches(seconds: float, audio_per_step: float, packed: bool, seed: int = 0) -> list[dict]:
    """One step's items: ``audio_per_step`` seconds of ``seconds``-long utterances, one per
    item or packed into 30-s windows (gaps included in the audio)."""
    rng = np.random.default_rng(seed)
    count = max(1, round(audio_per_step / seconds))
    tokens = max(1, round(TOKENS_PER_SECOND * seconds))
    if not packed:
        return [_item(seconds, tokens, rng) for _ in range(count)]
    per_window = max(1, int((WINDOW_SECONDS + GAP_SECONDS) // (seconds + GAP_SECONDS)))
    items = []
    for start in range(0, count, per_window):
        n = min(per_window, count - start)
        items.append(_item(n * seconds + (n - 1) * GAP_SECONDS, n * tokens, rng))
    return items


def throughput(model: torch.nn.Module, items: list[dict], steps: int) -> float:
    """Audio seconds (speech only) per wall second of training steps on ``items``."""
    batch = M.collate(items)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    speech = sum(len(i["labels"]) - 1 for i in items) / TOKENS_PER_SECOND

    def step() -> None:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return speech * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[2.0, 5.0, 10.0])
    parser.add_argument("--audio-per-step", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternate plain and packed this many times"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        loaded = load_model(make_tiny_moonshine(folder, size="moonshine-tiny"), for_training=True)
    model = loaded.model.train()
    print("utterance s | items per step (plain / packed) | audio-s/s plain | packed | ratio")
    for seconds in args.seconds:
        plain_items = batches(seconds, args.audio_per_step, packed=False)
        packed_items = batches(seconds, args.audio_per_step, packed=True)
        # alternated, best of each: a shared CPU's load drifts between measurements
        plain = packed = 0.0
        for _ in range(args.rounds):
            plain = max(plain, throughput(model, plain_items, args.steps))
            packed = max(packed, throughput(model, packed_items, args.steps))
        print(
            f"{seconds:g} | {len(plain_items)} / {len(packed_items)} | {plain:.1f} | "
            f"{packed:.1f} | {packed / plain:.2f}"
        )


if __name__ == "__main__":
    main()
