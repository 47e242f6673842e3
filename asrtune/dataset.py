"""The one model-aware dataset: admitted examples grouped into windows
(:mod:`asrtune.data.windows`, :mod:`asrtune.data.batching`), each featurized on access by
the family's adapter (``pack_item``, ``packer``, ``window_item``).

It sits above :mod:`asrtune.models` and :mod:`asrtune.data`: data/ lays windows out from
durations and token counts only and imports nothing of models/.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from asrtune.data.batching import PACK_GAP_SECONDS, pack_indices, repack_same_count
from asrtune.data.sharding import LOSS_WEIGHT, LossFreeIndex
from asrtune.data.windows import (
    Example,
    TrainingMix,
    WindowPlan,
    nonspeech_examples,
    plan_prompt,
    plan_window,
    pull_out_singles,
)
from asrtune.models import LoadedModel


class WindowDataset(torch.utils.data.Dataset):
    """Windows of one or more utterances; ``__getitem__`` returns the family's item
    (``adapter.window_item``). When packed, :meth:`set_epoch` repacks with a new seed each
    epoch (same number of windows, so an epoch's length never changes). ``mix`` adds the
    :class:`TrainingMix` windows (the same number each epoch, new draws). An epoch's windows
    depend only on (seed, epoch) (:meth:`epoch_windows`), whatever epochs came before."""

    def __init__(
        self,
        loaded: LoadedModel,
        examples: list[Example],
        task: str,
        pack: bool,
        seed: int,
        timestamps: bool = False,
        mix: TrainingMix | None = None,
    ) -> None:
        self.loaded, self.examples, self.task, self.seed = loaded, examples, task, seed
        self.timestamps = timestamps  # some windows' labels hold timestamp tokens
        self.mix = mix or TrainingMix()
        adapter = loaded.adapter
        self.max_seconds = adapter.limits(loaded).max_seconds
        self.items = (
            [adapter.pack_item(loaded, ex, task, self.timestamps) for ex in examples]
            if pack
            else None
        )
        # epoch 0's speech windows; later epochs repack to the same count
        self.first_windows: list[list[Example]] = (
            self._first_packing()
            if self.items is not None and examples
            else [[ex] for ex in examples]
        )
        self.windows: list[list[Example]] = self.first_windows
        self.speech_windows = self.windows
        self.epoch = -1
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if epoch == self.epoch or not self.examples:
            return
        self.speech_windows = self._packed(epoch)
        self.windows = self._with_mix(self.speech_windows, epoch)
        self.epoch = epoch

    def epoch_windows(self, epoch: int) -> list[list[Example]]:
        """Epoch ``epoch``'s windows (what :meth:`set_epoch` makes current), without making
        them current: a step plan can be built for any epoch ahead of it."""
        if epoch == self.epoch or not self.examples:
            return self.windows
        return self._with_mix(self._packed(epoch), epoch)

    def _first_packing(self) -> list[list[Example]]:
        limits = self.loaded.adapter.packer(self.loaded, self.task, None)
        packs = pack_indices(
            self.items, limits.max_seconds, limits.max_tokens, limits.gap_seconds, self.seed
        )
        return [[self.examples[i] for i in pack] for pack in packs]

    def _packed(self, epoch: int) -> list[list[Example]]:
        """This epoch's speech windows: epoch 0's packing, or a repacking with its count."""
        if self.items is None or epoch == 0:
            return self.first_windows
        limits = self.loaded.adapter.packer(self.loaded, self.task, None)
        packs = repack_same_count(
            self.items,
            len(self.first_windows),
            limits.max_seconds,
            limits.max_tokens,
            seed=self.seed + epoch,
        )
        if packs is None:  # no packing with the same count: same windows, new order
            windows = list(self.first_windows)
            random.Random(self.seed + epoch).shuffle(windows)
            return windows
        return [[self.examples[i] for i in pack] for pack in packs]

    def _with_mix(self, windows: list[list[Example]], epoch: int) -> list[list[Example]]:
        """The speech windows plus this epoch's single-utterance and non-speech windows,
        in a seeded order (the speech windows' own when nothing is mixed in)."""
        mix, count = self.mix, len(windows)
        singles, nonspeech = round(mix.single_share * count), round(mix.nonspeech_share * count)
        if not singles and not nonspeech:
            return windows
        rng = random.Random(self.seed * 1_000_003 + epoch)
        mixed = pull_out_singles(windows, singles, rng) if singles else list(windows)
        languages = sorted({ex.language or "" for ex in self.examples})
        # as long as a window when packed, else as long as the longest utterance
        longest = max(ex.row.duration or 0.0 for ex in self.examples)
        clip_seconds = self.max_seconds if self.items is not None else max(longest, 1.0)
        mixed += [
            [example]
            for example in nonspeech_examples(
                nonspeech,
                rng.randrange(2**31),
                clip_seconds,
                [lang or None for lang in languages],
                mix.noise_files,
            )
        ]
        rng.shuffle(mixed)
        return mixed

    def __len__(self) -> int:
        return len(self.windows)

    def window_seconds(self, epoch: int | None = None) -> list[float]:
        """Audio seconds in each window (packed utterances and the gaps between them) of
        epoch ``epoch`` (default: the current one)."""
        windows = self.windows if epoch is None else self.epoch_windows(epoch)
        return [
            sum(ex.row.duration or 0.0 for ex in window) + PACK_GAP_SECONDS * (len(window) - 1)
            for window in windows
        ]

    def audio_seconds(self) -> float:
        """Seconds of speech (non-speech windows left out)."""
        return sum(
            ex.row.duration or 0.0 for window in self.windows for ex in window if ex.clip is None
        )

    def plan(self, index: int) -> WindowPlan:
        """Window ``index``'s layout in this epoch (seeded by run seed, epoch, index)."""
        window = self.windows[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        durations = [ex.row.duration or 0.0 for ex in window]
        nonspeech = window[0].clip is not None
        plan = plan_window(durations, self.max_seconds, self.mix, rng, nonspeech)
        if not self.mix.prompt_share or nonspeech:
            return plan
        # a stream of its own: the other draws stay as they were without prompts
        prompt_rng = np.random.default_rng([self.seed, self.epoch, int(index), 1])
        texts = [ex.row.text for ex in window]
        return replace(plan, prompt=plan_prompt(texts, self.mix, prompt_rng, window[0].language))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The family's item for window ``index``; a :class:`LossFreeIndex` gets its labels
        masked (-100) and :data:`LOSS_WEIGHT` 0, so it trains nothing (a data-parallel
        placeholder). A non-speech window's item has an empty transcript, a target."""
        window = self.windows[index]
        item = self.loaded.adapter.window_item(
            self.loaded, window, self.task, plan=self.plan(index)
        )
        if isinstance(index, LossFreeIndex):
            item = {**item, "labels": [-100] * len(item["labels"]), LOSS_WEIGHT: 0.0}
        return item
