"""The Trainer asrtune trains with: transformers' Trainer, changed only where it must be.

Evaluation is generation + corpus WER/CER (the same code as ``asrtune eval``), so choosing
the best checkpoint by WER needs no extra machinery; unpacked data can be batched by
duration; the training dataset hears about every new epoch (repacking).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from asrtune.data.batching import DurationBatchSampler
from asrtune.data.manifest import Row
from asrtune.evaluation import EvalResult, evaluate_rows
from asrtune.inference import DecodingOptions
from asrtune.models import LoadedModel


class EpochSetter(TrainerCallback):
    """Tells the training dataset each new epoch (repacking), in every process."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(int(state.epoch or 0))


class AsrTrainer(Trainer):
    """A Trainer whose evaluation is generation + corpus WER/CER (the same code as
    ``asrtune eval``), so best-checkpoint selection by WER needs no extra machinery.

    Each evaluation also logs ``eval_train_seconds``: training time so far, evaluation
    excluded (time-to-WER curves).
    """

    def __init__(
        self,
        *args: Any,
        loaded: LoadedModel,
        eval_rows: list[Row],
        decoding: DecodingOptions,
        max_batch_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, eval_dataset=eval_rows or None, **kwargs)
        self.loaded, self.eval_rows, self.decoding = loaded, eval_rows, decoding
        self.max_batch_seconds = max_batch_seconds
        self.last_eval: EvalResult | None = None
        self.clock_start: float | None = None
        self.eval_seconds = 0.0
        self.add_callback(EpochSetter(self.train_dataset))

    def get_train_dataloader(self) -> Any:
        """Duration-bucketed batches when ``max_batch_seconds`` is set, else Trainer's own."""
        if self.max_batch_seconds is None or not hasattr(self.train_dataset, "window_seconds"):
            return super().get_train_dataloader()
        sampler = DurationBatchSampler(
            self.train_dataset.window_seconds(),
            self.max_batch_seconds,
            max_batch_items=self.args.per_device_train_batch_size,
            seed=self.args.seed,
        )
        loader = torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
        )
        return self.accelerator.prepare(loader)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """Tied weights (Whisper's output layer is its decoder's embedding) are not saved,
        so a best-checkpoint reload reports them missing although loading the embedding
        restored them: re-tie instead of warning about them."""
        tied = set(getattr(self.model, "_tied_weights_keys", None) or ())
        missing = [key for key in load_result.missing_keys if key not in tied]
        if len(missing) < len(load_result.missing_keys):
            self.model.tie_weights()
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))

    def train(self, *args: Any, **kwargs: Any) -> Any:
        self.clock_start, self.eval_seconds = time.perf_counter(), 0.0
        return super().train(*args, **kwargs)

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        started = time.perf_counter()
        current = LoadedModel(self.model, self.loaded.processor, self.loaded.family, "training")
        result = evaluate_rows(current, self.eval_rows, self.decoding, progress=True)
        self.last_eval = result
        metrics = {
            f"{metric_key_prefix}_{key}": value
            for key, value in result.report().items()
            if key in ("wer", "cer", "wer_unnormalized", "num_samples")
        }
        metrics[f"{metric_key_prefix}_runtime"] = round(result.seconds, 2)
        if self.clock_start is not None:
            trained = started - self.clock_start - self.eval_seconds
            metrics[f"{metric_key_prefix}_train_seconds"] = round(trained, 2)
            self.eval_seconds += time.perf_counter() - started
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics
