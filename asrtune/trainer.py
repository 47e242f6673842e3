"""The Trainer asrtune trains with: transformers' Trainer, changed only where it must be.

- Evaluation is generation + corpus WER/CER (the same code as ``asrtune eval``, sharded
  across processes), so choosing the best checkpoint by WER needs no extra machinery.
- The loss is token-level cross-entropy averaged over the global batch (all processes, all
  accumulation steps), so it and its gradients do not depend on how a batch is split. CTC
  and transducer families train with their model's own CTC or TDT loss, summed per
  utterance and divided by the label tokens of the global batch the same way. An empty
  target (a non-speech window) is a target: it trains towards all-blank (CTC, TDT) or the
  end of the transcript, and counts as one unit in the divisor (:func:`target_units`), so a
  batch of only non-speech windows has a finite loss. Only data-parallel placeholders
  (loss weight 0) carry no loss. (That is the
  loss's reduction: a model with batch norms in training mode, like Parakeet's conformer,
  still normalizes each micro-batch with its own statistics.)
- Batches come from :mod:`asrtune.data.sharding`: every process builds the same steps and
  trains its own share; unpacked data can be batched by duration; the training dataset
  hears about every new epoch (repacking).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from accelerate.data_loader import prepare_data_loader
from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback

from asrtune.checkpoints import CrashConsistentCheckpoints
from asrtune.data.manifest import Row
from asrtune.data.sharding import (
    LOSS_WEIGHT,
    DurationSteps,
    LossFreeIndex,
    LossWeightCollator,
    ShardedBatchSampler,
    fixed_size_steps,
)
from asrtune.data.windows import Example
from asrtune.dataset import WindowDataset
from asrtune.evaluation import EvalResult, evaluate_rows
from asrtune.guards import GUARDED, guard_metrics, guarded_value, within_limit
from asrtune.inference import DecodingOptions
from asrtune.models import LoadedModel
from asrtune.models.losses import target_units
from asrtune.processes import all_processes
from asrtune.terms import TermList


class EpochSetter(TrainerCallback):
    """Tells the training dataset each new epoch (repacking), in every process."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(int(state.epoch or 0))


class AsrTrainer(CrashConsistentCheckpoints, Trainer):
    """A Trainer whose evaluation is generation + corpus WER/CER (the same code as
    ``asrtune eval``), so best-checkpoint selection by WER needs no extra machinery.
    Checkpoints are written aside and renamed into place once complete
    (:class:`~asrtune.checkpoints.CrashConsistentCheckpoints`).

    Each evaluation also logs ``eval_train_seconds``: training time so far, evaluation
    excluded (time-to-WER curves).
    """

    # compute_loss divides by the label tokens of the whole accumulated global batch
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *args: Any,
        loaded: LoadedModel,
        eval_rows: list[Row],
        decoding: DecodingOptions,
        max_batch_seconds: float | None = None,
        eval_examples: list[Example] | None = None,
        guard_rows: dict[str, list[Row]] | None = None,
        max_guard_regression: float | None = None,
        terms: TermList | None = None,
        eval_subset: tuple[list[Row], list[Example]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, eval_dataset=eval_rows or None, **kwargs)
        self.loaded, self.eval_rows, self.decoding = loaded, eval_rows, decoding
        self.eval_examples = eval_examples or []
        # what evaluations during training score (rows, loss examples): all, or a sample
        self.eval_during = eval_subset or (self.eval_rows, self.eval_examples)
        self.scoring_all = False  # set by evaluate_all: the whole eval set, this once
        self.guard_rows = guard_rows or {}
        self.max_guard_regression = max_guard_regression
        self.guard_baseline: dict[str, EvalResult] = {}  # the base model's, before training
        self.last_guards: dict[str, EvalResult] = {}
        self.max_batch_seconds = max_batch_seconds
        self.last_eval: EvalResult | None = None
        self.last_eval_all = False  # whether last_eval scored the whole eval set
        self.terms = terms  # the user's terms, counted at every evaluation
        self.clock_start: float | None = None
        self.eval_seconds = 0.0
        self.add_callback(EpochSetter(self.train_dataset))
        if not isinstance(self.data_collator, LossWeightCollator):  # placeholders say so
            self.data_collator = LossWeightCollator(self.data_collator)
        # The Trainer counts the label tokens of each global batch (num_items_in_batch,
        # gathered over processes) only for models that take loss kwargs; compute_loss
        # divides by that count whatever the model's forward accepts.
        self.model_accepts_loss_kwargs = True

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        """Token-level cross-entropy over the global batch: this micro-batch's summed loss
        divided by ``num_items_in_batch``, the label tokens of all micro-batches of the
        optimizer step in all processes. Data-parallel gradients are averaged over the
        processes, so the loss is multiplied by their number to give the global mean.
        The model gets no labels, so it computes no loss of its own (Whisper's ignores
        ``num_items_in_batch``, and would keep a second (B, L, V) log-softmax alive until
        the step ends): the collated batch carries every input the model needs. A CTC or
        transducer family's loss is its model's own CTC or TDT loss, per utterance, summed:
        each family's ``summed_loss`` (its kind's, see ``asrtune/models/kinds/``) says what
        the micro-batch's summed loss and units are, and the same division then gives that
        loss per label token of the global batch.
        """
        summed, count, outputs = self._summed_loss(model, inputs, self.args.label_smoothing_factor)
        if num_items_in_batch is None:  # no global count: this micro-batch's mean
            loss = summed / count.clamp(min=1)
            # inside training, scaled for accumulation (loss_is_scaled_for_ga says it is)
            loss = loss / getattr(self, "current_gradient_accumulation_steps", 1)
        else:
            loss = summed / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def _get_num_items_in_batch(
        self, batch_samples: list[dict[str, Any]], device: torch.device
    ) -> torch.Tensor | None:
        """The divisor of the optimizer step's loss: the :func:`target_units` of all its
        micro-batches, summed over the processes (transformers counts label tokens only,
        so a step of only non-speech CTC windows would divide 0 by 0)."""
        if not batch_samples or "labels" not in batch_samples[0]:
            return None
        shift = self.loaded.adapter.LOSS_SHIFTS_LABELS
        units = sum(
            target_units(batch["labels"], batch.get(LOSS_WEIGHT), shift).sum()
            for batch in batch_samples
        )
        units = torch.as_tensor(units, device=device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            units = self.accelerator.gather(units).sum()
        return units

    def _summed_loss(
        self, model: torch.nn.Module, batch: dict[str, Any], label_smoothing: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """The family's ``summed_loss`` of a collated batch (its kind's: token-level
        cross-entropy, or the model's own CTC or transducer loss, see
        ``asrtune/models/kinds/``): the summed loss, its :func:`target_units` and the
        model's outputs. ``model`` may be wrapped for data parallelism."""
        return self.loaded.adapter.summed_loss(model, self.model, batch, label_smoothing)

    def get_train_dataloader(self) -> Any:
        """This process's share of the training steps (see :mod:`asrtune.data.sharding`),
        already disjoint: accelerate only places the batches on the device."""
        dataset = self.train_dataset
        if hasattr(dataset, "window_seconds"):
            loader = torch.utils.data.DataLoader(
                dataset,
                batch_sampler=ShardedBatchSampler(
                    self._training_steps(),
                    self.accelerator.process_index,
                    self.accelerator.num_processes,
                ),
                collate_fn=self.data_collator,
                **self._loader_options(),
            )
        else:  # a stream, split between the processes by StreamingWindows itself
            loader = torch.utils.data.DataLoader(
                dataset,
                batch_size=self.args.per_device_train_batch_size,
                collate_fn=self.data_collator,
                **self._loader_options(),
            )
        return prepare_data_loader(
            loader,
            device=self.args.device,
            num_processes=1,
            process_index=0,
            put_on_device=True,
            dispatch_batches=False,  # every process reads its own batches
            non_blocking=self.args.dataloader_pin_memory and torch.cuda.is_available(),
        )

    def _training_steps(self) -> Any:
        """``epoch → steps``: fixed-size batches, or duration buckets with
        ``max_batch_seconds``; the same in every process for (seed, epoch), and the same
        number of steps in every epoch (the Trainer plans with the first epoch's count).

        Every epoch of the dataset has the same number of windows, so fixed-size steps are
        built from one count; duration buckets are cut from each epoch's own window
        seconds (:class:`~asrtune.data.sharding.DurationSteps`, which looks ahead over the
        epochs this run trains to keep the count).
        """
        per_device, world = self.args.per_device_train_batch_size, self.accelerator.num_processes
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        dataset = self.train_dataset
        if self.max_batch_seconds is None:
            count = len(dataset)
            return lambda epoch: fixed_size_steps(count, per_device, world, seed, epoch)
        first = DurationSteps(
            dataset.window_seconds, self.max_batch_seconds, per_device, world, seed, 1
        )
        epochs = self._planned_epochs(-(-first.num_batches // world))
        if epochs == 1:
            return first
        return DurationSteps(
            dataset.window_seconds, self.max_batch_seconds, per_device, world, seed, epochs
        )

    def _planned_epochs(self, steps_per_epoch: int) -> int:
        """The epochs this run trains with ``steps_per_epoch`` batches an epoch (or fewer:
        more batches an epoch never need more epochs)."""
        args = self.args
        if args.max_steps > 0:
            updates = max(-(-steps_per_epoch // args.gradient_accumulation_steps), 1)
            return -(-args.max_steps // updates)
        return max(math.ceil(args.num_train_epochs), 1)

    def _loader_options(self) -> dict[str, Any]:
        workers = self.args.dataloader_num_workers
        options: dict[str, Any] = {
            "num_workers": workers,
            "pin_memory": self.args.dataloader_pin_memory and torch.cuda.is_available(),
        }
        if workers > 0:
            options["prefetch_factor"] = self.args.dataloader_prefetch_factor
        return options

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """Tied weights (Whisper's output layer is its decoder's embedding) are not saved,
        so a best-checkpoint reload reports them missing although loading the embedding
        restored them: re-tie instead of warning about them."""
        tied = set(getattr(self.model, "_tied_weights_keys", None) or ())
        missing = [key for key in load_result.missing_keys if key not in tied]
        if len(missing) < len(load_result.missing_keys):
            self.model.tie_weights()
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))

    def _finalize_training(self, *args: Any, **kwargs: Any) -> Any:
        """transformers adds the loss of the steps since the last log to ``train_loss``
        without averaging it over the processes (each reports its own share, which is
        scaled for the global batch): average it first, as logged losses are."""
        if self.accelerator.num_processes > 1:
            self._tr_loss = self.accelerator.reduce(self._tr_loss, reduction="mean")
        return super()._finalize_training(*args, **kwargs)

    def eval_loss(self, examples: list[Example] | None = None) -> float:
        """Teacher-forced cross-entropy per label token over ``examples`` (default: the eval
        utterances within the model's limits), each process its share, summed over all.
        The utterances are laid out as training lays them out: packed into windows when
        training packs (one fixed packing, no training mix), so a window model such as
        Whisper runs its encoder once per 30-s window, not once per short utterance padded
        to 30 s.

        Every process runs the same number of batches (a share one short is topped up with
        a loss-free copy of an item), as sharded models (FSDP, ZeRO-3) need.
        """
        packed = getattr(self.train_dataset, "items", None) is not None
        examples = self.eval_examples if examples is None else examples
        dataset = WindowDataset(self.loaded_now(), examples, self.decoding.task, packed, 0)
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        size = self.args.per_device_eval_batch_size
        per_process = -(-len(dataset) // world)
        mine: list[int] = list(range(rank, len(dataset), world))
        mine += [LossFreeIndex(0)] * (per_process - len(mine))
        summed, count = 0.0, 0
        was_training = self.model.training
        self.model.eval()
        starts = tqdm(
            range(0, len(mine), size),
            desc="eval loss",
            unit="batch",
            disable=not self.is_world_process_zero(),
        )
        with torch.no_grad(), self.autocast_smart_context_manager():
            for start in starts:
                batch = self._prepare_inputs(
                    self.data_collator([dataset[i] for i in mine[start : start + size]])
                )
                loss, tokens, _ = self._summed_loss(self.model, batch)
                summed, count = summed + loss.item(), count + int(tokens)
        if was_training:
            self.model.train()
        totals = all_processes((summed, count))
        return sum(t[0] for t in totals) / max(sum(t[1] for t in totals), 1)

    def loaded_now(self) -> LoadedModel:
        """The model being trained, as the LoadedModel that evaluation functions take."""
        return LoadedModel(self.model, self.loaded.processor, self.loaded.family, "training")

    def evaluate_guards(self) -> dict[str, EvalResult]:
        """The model as it is now on every guard set (see :mod:`asrtune.guards`)."""
        zero = self.is_world_process_zero()
        return {
            name: evaluate_rows(
                self.loaded_now(),
                rows,
                self.decoding,
                progress=zero and f"transcribing guard set {name!r}",
            )
            for name, rows in self.guard_rows.items()
        }

    def train(self, *args: Any, **kwargs: Any) -> Any:
        if self.guard_rows and not self.guard_baseline:  # before any weight changes
            self.guard_baseline = self.evaluate_guards()
        self.clock_start, self.eval_seconds = time.perf_counter(), 0.0
        return super().train(*args, **kwargs)

    def evaluate_all(self) -> dict[str, float]:
        """:meth:`evaluate` on the whole eval set, whatever ``--eval_subset`` samples."""
        self.scoring_all = True
        try:
            return self.evaluate()
        finally:
            self.scoring_all = False

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        started = time.perf_counter()
        # the last evaluation during training scores everything: the final one would redo it
        last_step = self.state.max_steps > 0 and self.state.global_step >= self.state.max_steps
        rows, examples = (
            (self.eval_rows, self.eval_examples)
            if self.scoring_all or last_step
            else self.eval_during
        )
        sampled = "" if rows is self.eval_rows else f" ({len(rows)} of {len(self.eval_rows)})"
        result = evaluate_rows(
            self.loaded_now(),
            rows,
            self.decoding,
            progress=self.is_world_process_zero() and f"transcribing the eval set{sampled}",
            terms=self.terms,
        )
        self.last_eval_all = rows is self.eval_rows
        self.last_eval = result
        metrics = {
            f"{metric_key_prefix}_{key}": value
            for key, value in result.report().items()
            if key in ("wer", "cer", "wer_unnormalized", "num_samples", "loops")
        }
        if result.longform is not None:
            metrics[f"{metric_key_prefix}_longform_wer"] = result.longform.wer
        if result.nonspeech is not None:
            metrics[f"{metric_key_prefix}_nonspeech_words"] = result.nonspeech.words
        if result.terms is not None and result.terms.recall is not None:
            metrics[f"{metric_key_prefix}_term_recall"] = result.terms.recall
            metrics[f"{metric_key_prefix}_term_false_alarms"] = result.terms.false_alarms
        if examples:
            metrics[f"{metric_key_prefix}_loss"] = self.eval_loss(examples)
        if self.guard_rows:
            self.last_guards = self.evaluate_guards()
            metrics |= guard_metrics(metric_key_prefix, self.last_guards, self.guard_baseline)
            if self.max_guard_regression is not None:
                metric = str(self.args.metric_for_best_model).removeprefix(GUARDED)
                within = within_limit(
                    self.last_guards, self.guard_baseline, self.max_guard_regression
                )
                value = metrics[f"{metric_key_prefix}_{metric}"]
                metrics[f"{metric_key_prefix}_{GUARDED}{metric}"] = guarded_value(value, within)
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
