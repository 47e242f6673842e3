"""Empty targets are targets: a non-speech window (empty transcript) trains in every family
that trains non-speech windows, towards the end of the transcript (Whisper) or the blank
at every frame (Parakeet CTC, TDT); only a data-parallel placeholder carries no loss, and
a global batch of only non-speech windows has a finite loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from asrtune.data.sharding import LOSS_WEIGHT, LossFreeIndex
from asrtune.data.windows import nonspeech_examples
from asrtune.dataset import WindowDataset
from asrtune.models import FAMILIES, LoadedModel, load_model
from asrtune.trainer import AsrTrainer
from tests.family_helpers import tiny_trainer

FAMILIES_WITH_SILENCE = ["whisper", "parakeet_ctc", "parakeet_tdt"]


@pytest.fixture(params=FAMILIES_WITH_SILENCE)
def loaded(request: pytest.FixtureRequest, tmp_path: Path) -> LoadedModel:
    if request.param == "whisper":
        return load_model(str(request.getfixturevalue("tiny_whisper")))
    return load_model(str(FAMILIES[request.param].build_tiny(tmp_path / "base")))


def _trainer(loaded: LoadedModel, tmp_path: Path) -> AsrTrainer:
    return tiny_trainer(loaded, tmp_path / "o")


def _nonspeech(loaded: LoadedModel) -> WindowDataset:
    """Windows of one non-speech clip each (1-3 s of noise, tones, silence...)."""
    examples = nonspeech_examples(3, seed=5, max_seconds=3.0, languages=["en"])
    return WindowDataset(loaded, examples, "transcribe", False, 0)


def _step(trainer: AsrTrainer, items: list[dict[str, Any]], units: Any = None) -> tuple:
    """The loss of one optimizer step of ``items`` (the Trainer's divisor, or ``units``
    when other processes would bring them) and its gradient norm."""
    model = trainer.model
    model.eval()  # batch norms on running statistics: rows do not depend on each other
    model.zero_grad(set_to_none=True)
    batch = trainer._prepare_inputs(trainer.data_collator(items))
    count = trainer._get_num_items_in_batch([batch], trainer.args.device)
    loss = trainer.compute_loss(model, batch, num_items_in_batch=units or count)
    loss.backward()
    grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    return loss.detach(), count, torch.stack(grads).norm() if grads else torch.tensor(0.0)


def test_a_non_speech_window_trains_and_a_placeholder_does_not(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    trainer, dataset = _trainer(loaded, tmp_path), _nonspeech(loaded)
    assert dataset[0]["labels"] is not None and dataset.windows[0][0].clip is not None
    loss, count, grad = _step(trainer, [dataset[0]])
    assert count >= 1 and torch.isfinite(loss) and loss > 0
    assert grad > 0  # trained towards the empty transcript
    placeholder = dataset[LossFreeIndex(0)]
    assert placeholder[LOSS_WEIGHT] == 0.0
    # alone in its process (another brings the units): no loss, no gradient
    loss, count, grad = _step(trainer, [placeholder], units=torch.tensor(1))
    assert count == 0 and loss == 0 and grad == 0
    # beside a non-speech window: the window's loss and units, nothing more
    both, both_count, _ = _step(trainer, [dataset[0], placeholder])
    alone, alone_count, _ = _step(trainer, [dataset[0]])
    assert both_count == alone_count
    torch.testing.assert_close(both, alone, rtol=1e-4, atol=1e-5)


def test_a_batch_of_only_non_speech_windows_has_a_finite_loss(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    """Each empty target counts as one unit of the divisor (the end of the transcript it
    must predict), so the loss is not 0/0."""
    trainer, dataset = _trainer(loaded, tmp_path), _nonspeech(loaded)
    loss, count, grad = _step(trainer, [dataset[i] for i in range(len(dataset))])
    assert count >= len(dataset)
    assert torch.isfinite(loss) and loss > 0 and torch.isfinite(grad) and grad > 0
