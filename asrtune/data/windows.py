"""Training windows: admitted utterances (:class:`Example`) grouped into windows, and each
window's layout (:class:`WindowPlan`) and audio (:func:`window_audio`).

The one dataset over them, :class:`asrtune.dataset.WindowDataset`, lives above the model
families (the family's adapter featurizes each window); this module knows durations and
token counts only.

A :class:`TrainingMix` keeps what a pretrained model could do: a share of windows with
timestamp tokens (the rest ``<|notimestamps|>``), windows of non-speech audio with an empty
transcript, some windows holding one short utterance alone, and gaps of varied length
filled with low noise. Each window's layout (:class:`WindowPlan`) is drawn from a seed of
(run seed, epoch, window), so every process and dataloader worker draws the same.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from asrtune.data.audio import SAMPLE_RATE, load_row_audio
from asrtune.data.batching import PACK_GAP_SECONDS
from asrtune.data.manifest import Row
from asrtune.data.nonspeech import NonspeechClip, gap_noise, nonspeech_clips
from asrtune.terms import TermList, find_occurrences, spelling_tokens, tokens

#: Natural gaps: seconds between packed utterances, drawn uniformly, and the most silence
#: before a window's first utterance; both shrink to fit a full window.
GAP_RANGE_SECONDS = (0.1, 1.0)
MAX_LEAD_IN_SECONDS = 0.5


@dataclass(frozen=True)
class Example:
    """One utterance admitted for training, with its label token count; or, with ``clip``,
    a non-speech clip (its row's text is empty)."""

    row: Row
    language: str | None
    num_tokens: int
    clip: NonspeechClip | None = None


@dataclass(frozen=True)
class TrainingMix:
    """What training mixes in to keep a model's abilities (each a share of the windows);
    the default mixes in nothing and joins utterances with :data:`PACK_GAP_SECONDS` of
    digital silence."""

    timestamp_share: float = 0.0  # windows whose labels carry timestamp tokens
    nonspeech_share: float = 0.0  # extra windows of non-speech audio, empty transcript
    single_share: float = 0.0  # extra windows of one short utterance taken from a pack
    natural_gaps: bool = False  # varied gaps and lead-in, filled with low noise
    noise_files: tuple[str, ...] = field(default=(), repr=False)  # --noise_dir's files
    prompt_share: float = 0.0  # windows decoded after a prompt of terms (--prompt_share)
    prompt_terms: TermList | None = field(default=None, repr=False)  # --terms, for prompts

    def summary(self) -> str:
        """E.g. "timestamps in 50% of windows, +5% non-speech windows, natural gaps"."""
        parts = [
            f"timestamps in {self.timestamp_share:.0%} of windows",
            f"+{self.nonspeech_share:.0%} non-speech windows",
            f"+{self.single_share:.0%} single-utterance windows",
            "natural gaps" if self.natural_gaps else "0.4-s silent gaps",
        ]
        if self.noise_files:
            parts.append(f"{len(self.noise_files)} noise file(s)")
        if self.prompt_share:
            parts.append(f"term prompts in {self.prompt_share:.0%} of windows")
        return ", ".join(parts)


@dataclass(frozen=True)
class WindowPlan:
    """How one window's audio and labels are laid out: seconds of silence before the first
    utterance (``lead_in``) and between utterances (``gaps``, :data:`PACK_GAP_SECONDS` each
    when empty), low noise in them when ``noise_seed`` is set (else digital zeros), and
    timestamp tokens in the labels when ``timestamps``."""

    timestamps: bool = False
    lead_in: float = 0.0
    gaps: tuple[float, ...] = ()
    noise_seed: int | None = None
    prompt: tuple[str, ...] = ()  # terms the decoder is prompted with (--prompt_share)

    def gap(self, index: int) -> float:
        return self.gaps[index] if self.gaps else PACK_GAP_SECONDS


#: Utterances joined by :data:`PACK_GAP_SECONDS` of digital silence, no timestamps.
PLAIN_WINDOW = WindowPlan()


def plan_window(
    durations: Sequence[float],
    max_seconds: float,
    mix: TrainingMix,
    rng: np.random.Generator,
    nonspeech: bool = False,
) -> WindowPlan:
    """A seeded layout for a window of utterances of ``durations`` seconds that must fit
    ``max_seconds``: with ``mix.natural_gaps``, a lead-in of 0 to
    :data:`MAX_LEAD_IN_SECONDS` and gaps in :data:`GAP_RANGE_SECONDS`, scaled down together
    when they would overflow the window. A non-speech window has no timestamps."""
    timestamps = not nonspeech and bool(rng.random() < mix.timestamp_share)
    if not mix.natural_gaps:
        return WindowPlan(timestamps)
    gaps = rng.uniform(*GAP_RANGE_SECONDS, size=max(len(durations) - 1, 0))
    lead_in = float(rng.uniform(0.0, MAX_LEAD_IN_SECONDS))
    room = max(max_seconds - float(sum(durations)), 0.0)
    total = lead_in + float(gaps.sum())
    if total > room:
        scale = room / total
        gaps, lead_in = gaps * scale, lead_in * scale
    return WindowPlan(timestamps, lead_in, tuple(gaps.tolist()), int(rng.integers(2**31)))


#: Distractors in a term prompt: terms the window does not hold, at least this many.
MIN_DISTRACTORS = 1


def plan_prompt(
    texts: Sequence[str], mix: TrainingMix, rng: np.random.Generator, language: str | None
) -> tuple[str, ...]:
    """The terms a window's decoder is prompted with: none for ``1 - mix.prompt_share`` of
    the windows; else the terms of ``mix.prompt_terms`` that the window's ``texts`` hold,
    plus as many distractors (terms it does not hold; at least :data:`MIN_DISTRACTORS`),
    shuffled. The model so learns to use a prompt's terms where it hears them and to
    ignore the others, not to copy them."""
    terms = mix.prompt_terms
    if terms is None or not mix.prompt_share or rng.random() >= mix.prompt_share:
        return ()
    held = rows_holding(texts, terms, language)
    present = [t.term for t in terms.terms if t.term in held]
    absent = [t.term for t in terms.terms if t.term not in held]
    count = min(len(absent), max(len(present), MIN_DISTRACTORS))
    chosen = present + [absent[i] for i in rng.choice(len(absent), count, replace=False)]
    return tuple(chosen[i] for i in rng.permutation(len(chosen)))


def rows_holding(texts: Sequence[str], terms: TermList, language: str | None) -> set[str]:
    """The terms (as written in the term file) that some of ``texts`` holds."""
    found = set()
    for text in texts:
        words = tokens(text, language)
        for term in terms.terms:
            if find_occurrences(words, spelling_tokens(term, language, "transcribe")):
                found.add(term.term)
    return found


def window_audio(
    window: Sequence[Example], plan: WindowPlan = PLAIN_WINDOW
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A window's (n_samples,) 16-kHz audio and each example's (start, end) seconds in it,
    laid out by ``plan``."""
    rng = np.random.default_rng(plan.noise_seed) if plan.noise_seed is not None else None

    def room(seconds: float) -> np.ndarray:
        samples = round(seconds * SAMPLE_RATE)
        return gap_noise(samples, rng) if rng is not None else np.zeros(samples, np.float32)

    pieces = [room(plan.lead_in)] if plan.lead_in > 0 else []
    position = sum(len(p) for p in pieces)
    spans = []
    for index, example in enumerate(window):
        if index:
            pieces.append(room(plan.gap(index - 1)))
            position += len(pieces[-1])
        audio = example.clip.audio() if example.clip else load_row_audio(example.row)
        pieces.append(audio)
        spans.append((position / SAMPLE_RATE, (position + len(audio)) / SAMPLE_RATE))
        position += len(audio)
    return np.concatenate(pieces), spans


def nonspeech_examples(
    count: int,
    seed: int,
    max_seconds: float,
    languages: Sequence[str | None],
    files: Sequence[str] = (),
) -> list[Example]:
    """``count`` non-speech examples (see :func:`~asrtune.data.nonspeech.nonspeech_clips`),
    each in a language drawn from ``languages`` (those of the training examples)."""
    rng = random.Random(seed)
    return [
        Example(
            Row(f"nonspeech-{i}", clip.path or f"<{clip.kind}>", "", None, clip.seconds),
            rng.choice(languages) if languages else None,
            0,
            clip,
        )
        for i, clip in enumerate(nonspeech_clips(count, seed, max_seconds, list(files)))
    ]


def pull_out_singles(
    windows: list[list[Example]], count: int, rng: random.Random
) -> list[list[Example]]:
    """Take the shortest utterance out of ``count`` random windows of two or more into
    windows of their own: one short input per window, as users' short clips come.

    When fewer windows than ``count`` hold two or more, the rest are taken from windows
    still holding two or more (a second utterance from the same window, and so on): the
    ``count`` is met whenever the windows hold that many utterances beyond the first of
    each. That number is the same in every epoch of the same utterances in the same number
    of windows, so the window count is too.
    """
    shared = [i for i, window in enumerate(windows) if len(window) > 1]
    windows = [list(window) for window in windows]
    singles = []
    for i in rng.sample(shared, min(count, len(shared))):
        windows[i], shortest = _without_shortest(windows[i])
        singles.append([shortest])
    while len(singles) < count:  # rare: few windows share, and some of those hold more
        left = [i for i in shared if len(windows[i]) > 1]
        if not left:
            break
        i = rng.choice(left)
        windows[i], shortest = _without_shortest(windows[i])
        singles.append([shortest])
    return windows + singles


def _without_shortest(window: list[Example]) -> tuple[list[Example], Example]:
    shortest = min(window, key=lambda ex: ex.row.duration or 0.0)
    return [ex for ex in window if ex is not shortest], shortest
