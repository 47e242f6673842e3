"""Epoch-stable training data: every epoch of a finite dataset has the window count and
the number of steps the Trainer planned with, each window is in exactly one step an
epoch, and batches sized by seconds hold to ``max_batch_seconds`` in every epoch, however
the training mix repacks windows and redraws non-speech clips."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from asrtune.data.manifest import Row
from asrtune.data.sharding import DurationSteps, LossFreeIndex, ShardedBatchSampler
from asrtune.data.windows import Example, TrainingMix
from asrtune.dataset import WindowDataset
from asrtune.models import LoadedModel, load_model
from asrtune.models import whisper as W
from asrtune.trainer import AsrTrainer
from tests.family_helpers import tiny_trainer

WHISPER_MIX = TrainingMix(**W.TRAINING_MIX)


@pytest.fixture(scope="module")
def loaded(tiny_whisper: Path) -> LoadedModel:
    return load_model(str(tiny_whisper))


def long_and_short(long: int = 42, seed: int = 1) -> list[Example]:
    """The issue's data: ``long`` utterances of 19-25 s (no two share a 30-s window) and
    two short ones (5.1 s, 2.1 s). Nothing is read: plans need durations only."""
    draw = random.Random(seed)
    seconds = [draw.uniform(19, 25) for _ in range(long)] + [5.1, 2.1]
    return [
        Example(Row(f"u{i}", f"u{i}.wav", "hello world", "en", s), "en", 7)
        for i, s in enumerate(seconds)
    ]


def _trainer(
    loaded: LoadedModel, dataset: WindowDataset, tmp: Path, seed: int, epochs: int, **kw: object
) -> AsrTrainer:
    return tiny_trainer(
        loaded, tmp, dataset, kw, per_device_train_batch_size=8, num_train_epochs=epochs, seed=seed
    )


def _check_epoch(steps: list, seconds: list[float], budget: float | None, per_device: int) -> None:
    """Every window in exactly one batch, every batch within the budget."""
    real = [[i for i in batch if not isinstance(i, LossFreeIndex)] for s in steps for batch in s]
    assert sorted(i for batch in real for i in batch) == list(range(len(seconds)))
    for batch in real:
        assert len(batch) <= per_device
        if budget is not None and len(batch) > 1:
            assert len(batch) * max(seconds[i] for i in batch) <= budget


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_epoch_has_the_window_count_of_the_first(loaded: LoadedModel, seed: int) -> None:
    """Whisper's default mix on long segments: few windows hold two utterances, fewer than
    the single-utterance windows asked for in some epochs (the count varied: 52, 51, ...)."""
    examples = long_and_short()
    dataset = WindowDataset(loaded, examples, "transcribe", True, seed, True, WHISPER_MIX)
    first = len(dataset)
    for epoch in range(6):
        dataset.set_epoch(epoch)
        assert len(dataset) == first, f"epoch {epoch}"
        speech = Counter(ex.row.id for w in dataset.windows for ex in w if ex.clip is None)
        assert speech == Counter(ex.row.id for ex in examples)  # each utterance once
        assert sum(w[0].clip is not None for w in dataset.windows) == round(0.2 * 42)


def test_pulled_out_singles_keep_their_share_when_few_windows_are_shared(
    loaded: LoadedModel,
) -> None:
    """A share asking for more single windows than there are shared windows takes a
    second utterance out of a window holding three or more."""
    examples = [
        Example(Row(f"s{i}", f"s{i}.wav", "hi", "en", 1.0 + 0.1 * i), "en", 5) for i in range(6)
    ]
    mix = TrainingMix(single_share=1.0)  # one per window: 6 utterances in about 1 window
    dataset = WindowDataset(loaded, examples, "transcribe", True, 0, False, mix)
    speech_windows = len(dataset.speech_windows)
    assert speech_windows < 6
    singles = [w for w in dataset.windows if len(w) == 1]
    assert len(dataset) == speech_windows + min(speech_windows, 6 - speech_windows)
    assert len(singles) >= min(speech_windows, 6 - speech_windows)


def test_an_epochs_windows_do_not_depend_on_the_epochs_before(loaded: LoadedModel) -> None:
    """Plans are built ahead (and a resumed run starts at its epoch): epoch e's windows are
    the same whichever epochs were made current before."""
    examples = long_and_short(long=20)
    fresh = [WindowDataset(loaded, examples, "transcribe", True, 4, True, WHISPER_MIX)]
    ahead = fresh[0].epoch_windows(3)
    jumped = WindowDataset(loaded, examples, "transcribe", True, 4, True, WHISPER_MIX)
    jumped.set_epoch(2)
    jumped.set_epoch(3)
    assert jumped.windows == ahead
    jumped.set_epoch(0)
    assert jumped.windows == fresh[0].windows


@pytest.mark.parametrize(("seed", "epochs"), [(1, 2), (2, 4), (3, 3)])
def test_duration_steps_hold_the_budget_and_the_count_in_every_epoch(
    loaded: LoadedModel, tmp_path: Path, seed: int, epochs: int
) -> None:
    """Unpacked windows with non-speech clips redrawn each epoch, batches by seconds: the
    plan the Trainer takes (its first epoch's length) fits every epoch."""
    examples = long_and_short(long=30, seed=seed)
    mix = TrainingMix(nonspeech_share=0.5)
    dataset = WindowDataset(loaded, examples, "transcribe", False, seed, False, mix)
    budget = 60.0
    trainer = _trainer(loaded, dataset, tmp_path, seed, epochs, max_batch_seconds=budget)
    plan = trainer._training_steps()
    counts = set()
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        steps = plan(epoch)
        counts.add(len(steps))
        _check_epoch(steps, dataset.window_seconds(), budget, 8)
    assert len(counts) == 1


@pytest.mark.parametrize("seed", [1, 2])
def test_fixed_size_steps_cover_every_window_of_every_epoch(
    loaded: LoadedModel, tmp_path: Path, seed: int
) -> None:
    dataset = WindowDataset(loaded, long_and_short(), "transcribe", True, seed, True, WHISPER_MIX)
    trainer = _trainer(loaded, dataset, tmp_path, seed, 4)
    plan = trainer._training_steps()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        _check_epoch(plan(epoch), dataset.window_seconds(), None, 8)


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("seed", [1, 2])
def test_every_process_trains_its_share_of_every_epoch(
    loaded: LoadedModel, world: int, seed: int
) -> None:
    examples = long_and_short(long=30, seed=seed)
    mix = TrainingMix(nonspeech_share=0.5)
    dataset = WindowDataset(loaded, examples, "transcribe", False, seed, False, mix)
    plan = DurationSteps(dataset.window_seconds, 60.0, 4, world, seed, epochs=5)
    samplers = [ShardedBatchSampler(plan, rank, world) for rank in range(world)]
    lengths = set()
    for epoch in range(5):
        batches = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            lengths.add(len(sampler))
            batches.append(list(sampler))
        assert {len(b) for b in batches} == {len(samplers[0])}  # all in step
        steps = [[batch] for mine in batches for batch in mine]
        _check_epoch(steps, dataset.window_seconds(epoch), 60.0, 4)
    assert len(lengths) == 1


def test_a_resumed_epoch_skips_the_batches_already_trained(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    """transformers resumes mid-epoch with ``get_resumed_dataloader`` (skip the first N
    batches), then sets the epoch on the loader and on its batch sampler: the rest of the
    epoch is the uninterrupted run's, from that epoch's own plan."""
    examples = long_and_short(long=30)
    dataset = WindowDataset(loaded, examples, "transcribe", False, 2, False, TrainingMix(0, 0.5))
    trainer = _trainer(loaded, dataset, tmp_path, 2, 3, max_batch_seconds=60.0)
    whole = trainer.get_train_dataloader()
    sampler = whole.batch_sampler
    sampler.set_epoch(2)
    expected = list(sampler)[3:]
    resumed = trainer.get_resumed_dataloader(trainer.get_train_dataloader(), 3)
    resumed.set_epoch(2)  # as Trainer._run_epoch does, then its wrapped batch sampler:
    resumed.batch_sampler.batch_sampler.set_epoch(2)
    assert list(resumed.batch_sampler) == expected
    assert len(resumed.batch_sampler) == len(sampler) - 3


@pytest.mark.parametrize("pack", [True, False])
def test_the_eval_loss_lays_utterances_out_as_training_does(
    loaded: LoadedModel, tmp_path: Path, pack: bool
) -> None:
    """Packed training → the eval loss runs the encoder on packed windows (fewer than the
    8 utterances: the tiny model's 40 label positions bound a window); unpacked training →
    one utterance per item."""
    from asrtune.data.rows import load_rows
    from asrtune.training_data import admit_rows
    from tests.conftest import write_dataset

    rows = load_rows(str(write_dataset(tmp_path / "d", 8))).rows
    examples = admit_rows(loaded, rows, "transcribe")[0]
    dataset = WindowDataset(loaded, examples, "transcribe", pack, 0)
    trainer = _trainer(loaded, dataset, tmp_path / "o", 0, 1, eval_examples=examples)
    seen: list[int] = []
    hook = loaded.model.model.encoder.register_forward_hook(
        lambda _m, args, _o: seen.append(int(args[0].shape[0]))
    )
    try:
        loss = trainer.eval_loss()
    finally:
        hook.remove()
    assert loss > 0
    packed = WindowDataset(loaded, examples, "transcribe", True, 0)
    assert sum(seen) == (len(packed) if pack else len(examples))
    assert len(packed) < len(examples)
