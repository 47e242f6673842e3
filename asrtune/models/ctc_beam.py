"""CTC prefix beam search over a character vocabulary, with an optional character n-gram
language model built from text and hotwords (terms whose spelling is favoured).

Pure Python + numpy (pyctcdecode pins numpy < 2, which asrtune's other dependencies do not
allow; kenlm builds from source): the decoder of Hannun et al. (2014), "First-pass large
vocabulary continuous speech recognition using bi-directional recurrent DNNs". Each prefix
keeps two log-probabilities, ending in a blank or not; a character appended to a prefix
adds ``lm_weight`` x its n-gram log-probability and, while the word being written is the
start of a hotword, ``hotword_weight`` (pyctcdecode's partial-match scoring).

Inputs are one utterance's (T, V) log-probabilities (natural log) of the CTC frames and the
vocabulary as a list ``tokens[id]``: the blank's id, and ``word_delimiter`` (``|``) which is
written as a space.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

_NEG_INF = float("-inf")


def _log_add(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


@dataclass(frozen=True)
class CharNgram:
    """A character n-gram model with add-k smoothing over ``alphabet`` (+ the space and the
    end of text), interpolated with lower orders; built by :func:`char_ngram`."""

    order: int
    counts: dict[str, Counter[str]]  # context (up to order-1 chars) -> next char counts
    alphabet: frozenset[str]
    k: float = 0.1

    def log_prob(self, context: str, char: str) -> float:
        """log P(char | the last order-1 characters of ``context``) (natural log)."""
        size = len(self.alphabet) + 2
        prob = 1.0 / size
        for n in range(0, self.order):
            seen = self.counts.get(context[-n:] if n else "")
            if seen is None or len(context) < n:
                continue
            total = sum(seen.values())
            estimate = (seen[char] + self.k) / (total + self.k * size)
            prob = 0.5 * prob + 0.5 * estimate  # each longer context halves the shorter's say
        return math.log(prob)


def char_ngram(texts: Iterable[str], order: int = 4, k: float = 0.1) -> CharNgram:
    """A :class:`CharNgram` of ``order`` from ``texts`` (one sentence each, written as the
    model writes: normalized like its labels, spaces between words)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    alphabet: set[str] = set()
    for text in texts:
        line = " ".join(text.split())
        alphabet.update(line.replace(" ", ""))
        padded = " " + line + "\n"
        for i in range(1, len(padded)):
            for n in range(0, order):
                if i - n >= 0:
                    counts[padded[i - n : i]][padded[i]] += 1
    return CharNgram(order, dict(counts), frozenset(alphabet), k)


@dataclass(frozen=True)
class BeamOptions:
    """``beam_width`` prefixes kept per frame; ``lm`` and ``lm_weight``: the n-gram and its
    weight; ``hotwords`` and ``hotword_weight``: terms favoured per matching character;
    ``prune``: characters below this log-probability in a frame are not tried."""

    beam_width: int = 16
    lm: CharNgram | None = None
    lm_weight: float = 0.5
    hotwords: tuple[str, ...] = field(default_factory=tuple)
    hotword_weight: float = 3.0
    prune: float = -12.0


def _hotword_bonus(text: str, hotwords: Sequence[str], weight: float) -> float:
    """``weight`` when the word being written (after the last space) starts a hotword."""
    word = text.rsplit(" ", 1)[-1]
    return weight if word and any(h.startswith(word) for h in hotwords) else 0.0


def beam_search(
    log_probs: np.ndarray,
    tokens: Sequence[str],
    blank: int,
    options: BeamOptions = BeamOptions(),
    word_delimiter: str = "|",
) -> str:
    """The best transcript of (T, V) CTC ``log_probs`` by prefix beam search; special
    tokens other than the delimiter (``[UNK]``, ``[PAD]``) are never written."""
    chars = [" " if t == word_delimiter else t for t in tokens]
    writable = [
        i for i, t in enumerate(tokens) if i != blank and (len(t) == 1 or t == word_delimiter)
    ]
    hotwords = [h.lower() for h in options.hotwords]
    # prefix -> (log p ending in blank, log p ending in a character, extra score)
    beams: dict[str, tuple[float, float, float]] = {"": (0.0, _NEG_INF, 0.0)}
    for frame in np.asarray(log_probs, dtype=np.float64):
        after: dict[str, list[float]] = defaultdict(lambda: [_NEG_INF, _NEG_INF, 0.0])
        candidates = [i for i in writable if frame[i] >= options.prune]
        for prefix, (p_blank, p_char, extra) in beams.items():
            total = _log_add(p_blank, p_char)
            entry = after[prefix]
            entry[0] = _log_add(entry[0], total + frame[blank])
            entry[2] = extra
            last = prefix[-1] if prefix else None
            for i in candidates:
                char = chars[i]
                if char == " " and (not prefix or last == " "):
                    continue
                if char == last:  # a repeat merges unless a blank came between
                    entry[1] = _log_add(entry[1], p_char + frame[i])
                    grown, source = prefix + char, p_blank
                else:
                    grown, source = prefix + char, total
                bonus = 0.0
                if options.lm is not None:
                    bonus += options.lm_weight * options.lm.log_prob(" " + prefix, char)
                if hotwords:
                    bonus += _hotword_bonus(grown, hotwords, options.hotword_weight)
                target = after[grown]
                target[1] = _log_add(target[1], source + frame[i])
                target[2] = extra + bonus
        ranked = sorted(after.items(), key=lambda kv: _log_add(kv[1][0], kv[1][1]) + kv[1][2])
        beams = {p: (b, c, e) for p, (b, c, e) in ranked[-options.beam_width :]}
    best = max(beams.items(), key=lambda kv: _log_add(kv[1][0], kv[1][1]) + kv[1][2])[0]
    return " ".join(best.split())
