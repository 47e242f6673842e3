"""The CTC kind: a model of transformers' ``AutoModelForCTC`` (an encoder and a linear head;
one token or the blank per encoder frame, greedy decoding) trained with its own CTC loss.

What a CTC family shares comes from here: :func:`summed_loss` (the family's
``summed_loss``), :func:`ctc_collapse` (greedy decoding's merge of repeats and blanks), and
``LOSS_SHIFTS_LABELS`` / ``LORA_TASK_TYPE``. A family module imports them and declares what
differs (its model class, processor, limits, LoRA targets); see ``parakeet_ctc.py``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from asrtune.data.sharding import LOSS_WEIGHT
from asrtune.models.losses import model_inputs, summed_rows, target_units

KIND = "ctc"
LOSS_SHIFTS_LABELS = False  # one output per frame: no label shift
LORA_TASK_TYPE = None  # a plain LoRA wrapper: no generation head to wrap


@contextlib.contextmanager
def _ctc_reduction(config: Any, reduction: str) -> Iterator[None]:
    """``config.ctc_loss_reduction`` set to ``reduction`` for the context's duration."""
    saved = config.ctc_loss_reduction
    config.ctc_loss_reduction = reduction
    try:
        yield
    finally:
        config.ctc_loss_reduction = saved


def summed_loss(
    model: torch.nn.Module,
    unwrapped: torch.nn.Module,
    batch: dict[str, Any],
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """A CTC model's own loss (transformers' ``ForCTCLoss``, as its forward computes it from
    ``labels``), summed over the batch's utterances, and the batch's :func:`target_units`.

    Each utterance's loss is the negative log-likelihood of its whole transcript (all
    alignments), not divided by its length (the model's default ``mean`` divides each by
    its label tokens, then averages the utterances): dividing the sum by the units of the
    global batch, as ``compute_loss`` does, gives the loss per label token over the global
    batch, however it is split. An empty transcript (a non-speech window) trains towards
    all-blank; a placeholder (``batch[LOSS_WEIGHT]`` 0) adds nothing. Label smoothing does
    not apply (``label_smoothing`` is ignored). ``unwrapped`` is the model without its
    data-parallel wrapper, whose config says the reduction.
    """
    labels, weights = batch["labels"], batch.get(LOSS_WEIGHT)
    with _ctc_reduction(unwrapped.config, "none"):
        outputs = model(**model_inputs(batch))
    return summed_rows(outputs["loss"], weights), target_units(labels, weights).sum(), outputs


def ctc_collapse(ids: Sequence[int], blank: int) -> list[int]:
    """Greedy CTC: repeats collapsed, then blanks dropped."""
    return [token for token, _ in itertools.groupby(ids) if token != blank]
