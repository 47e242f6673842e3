"""``asrtune bench``: the reference recipe against asrtune's defaults, same machine, one run.

Reference (the seq2seq fine-tuning article): each clip's log-mel padded to 30 s by the
processor in a ``map`` step, ``DataCollatorSpeechSeq2SeqWithPadding``-style collation,
``Seq2SeqTrainer``, lr 1e-5, batch 8, gradient checkpointing, linear schedule, ``epochs``
epochs (its fp16 needs a GPU: bf16 is used where a GPU supports it). asrtune:
``asrtune train`` with its defaults (packed windows, its own number of epochs unless
``asrtune_epochs`` says otherwise). Both are evaluated on the same rows with the same code
(:func:`asrtune.evaluation.evaluate_rows`) after every epoch; evaluation time never counts as
training time. Encoder-decoder families only (the reference recipe is the seq2seq
article's, written for Whisper).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

from asrtune.api import train as asrtune_train
from asrtune.config import TRAINING_DEFAULTS
from asrtune.data.audio import load_row_audio
from asrtune.data.manifest import Row
from asrtune.data.rows import load_rows
from asrtune.errors import AsrtuneError
from asrtune.evaluation import evaluate_rows
from asrtune.models import LoadedModel, load_model
from asrtune.terms import TermList, TermScore, read_terms

log = logging.getLogger("asrtune")


@dataclass(frozen=True)
class BenchOptions:
    model: str
    train_manifest: str
    eval_manifest: str
    output_dir: str = "bench-out"
    epochs: float = 2  # the reference's
    asrtune_epochs: float | None = None  # None: asrtune's own default
    budget_seconds: float | None = None  # stop each recipe after this much training
    reference_batch_size: int = 8
    reference_learning_rate: float = 1e-5
    seed: int = 0
    asrtune_overrides: dict[str, Any] = field(default_factory=dict)
    terms: str | None = None  # a term file: both recipes' evaluations also count its terms


@dataclass
class RecipeResult:
    audio_seconds_per_second: float
    train_seconds: float
    wer: float
    curve: list[tuple[float, float]]  # (training seconds, WER), starting at the baseline
    # evaluation speed: audio seconds of the eval set per second of evaluation (all evals)
    eval_audio_seconds_per_second: float
    # the final evaluation's term counts (TermScore.as_dict) when the bench has a term file
    terms: dict[str, Any] | None = None


class BudgetStop(TrainerCallback):
    """Stops training once ``budget`` seconds of training (evaluation excluded) passed."""

    def __init__(self, clock: Any, budget: float | None) -> None:
        self.clock, self.budget = clock, budget

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.budget is not None and self.clock() >= self.budget:
            control.should_training_stop = True


class ReferenceEval(TrainerCallback):
    """Evaluates the reference model on the eval rows after each epoch, off the clock."""

    def __init__(self, loaded: LoadedModel, rows: list[Row], terms: TermList | None = None) -> None:
        self.loaded, self.rows, self.terms = loaded, rows, terms
        self.last_terms: TermScore | None = None
        self.start = 0.0
        self.paused = 0.0
        self.curve: list[tuple[float, float]] = []
        self.eval_seconds: list[float] = []

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start, self.paused = time.perf_counter(), 0.0

    def evaluate(self) -> float:
        began = time.perf_counter()
        trained = self.train_seconds()
        result = evaluate_rows(self.loaded, self.rows, progress=False, terms=self.terms)
        wer = result.score.wer
        self.last_terms = result.terms
        self.curve.append((round(trained, 2), wer))
        self.eval_seconds.append(result.seconds)
        self.paused += time.perf_counter() - began
        return wer

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.evaluate()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.curve or self.curve[-1][0] < self.train_seconds() - 1:
            self.evaluate()  # a budget stop mid-epoch


def reference_features(loaded: LoadedModel, rows: list[Row]) -> list[dict[str, Any]]:
    """The article's ``prepare_dataset``: 30-s log-mel per clip and tokenizer label ids."""
    tokenizer, extractor = loaded.processor.tokenizer, loaded.processor.feature_extractor
    # a multilingual model (no sole language) is told the rows' language
    language = rows[0].language if loaded.adapter.sole_language(loaded) is None else None
    if language:
        tokenizer.set_prefix_tokens(language=language.strip().lower(), task="transcribe")
    prepared = []
    for row in rows:
        audio = load_row_audio(row)
        features = extractor(audio, sampling_rate=16000).input_features[0]
        prepared.append({"input_features": features, "labels": tokenizer(row.text).input_ids})
    return prepared


class ReferenceCollator:
    """The article's DataCollatorSpeechSeq2SeqWithPadding."""

    def __init__(self, processor: Any, decoder_start_token_id: int) -> None:
        self.processor, self.decoder_start_token_id = processor, decoder_start_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        inputs = [{"input_features": f["input_features"]} for f in features]
        batch = self.processor.feature_extractor.pad(inputs, return_tensors="pt")
        label_features = [{"input_ids": f["labels"]} for f in features]
        labels_batch = self.processor.tokenizer.pad(label_features, return_tensors="pt")
        labels = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
        if (labels[:, 0] == self.decoder_start_token_id).all().cpu().item():
            labels = labels[:, 1:]
        batch["labels"] = labels
        return batch


def term_dict(score: TermScore | None) -> dict[str, Any] | None:
    """``score`` as the results file holds it (None: no term file)."""
    return score.as_dict() if score is not None else None


def run_reference(
    options: BenchOptions,
    rows: list[Row],
    eval_rows: list[Row],
    terms: TermList | None = None,
) -> RecipeResult:
    loaded = load_model(options.model)
    if loaded.spec.kind != "encoder_decoder":
        raise AsrtuneError(
            f"the bench's reference recipe trains encoder-decoder models; {options.model} is "
            f"a {loaded.spec.label} model ({loaded.spec.kind})"
        )
    prepared = reference_features(loaded, rows)
    evaluator = ReferenceEval(loaded, eval_rows, terms)
    args = Seq2SeqTrainingArguments(
        output_dir=str(Path(options.output_dir) / "reference"),
        per_device_train_batch_size=options.reference_batch_size,
        learning_rate=options.reference_learning_rate,
        warmup_steps=0.1,
        gradient_checkpointing=True,  # as the article sets it (it targets 16-GB GPUs)
        num_train_epochs=options.epochs if options.budget_seconds is None else 1000,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10,
        report_to="none",
        remove_unused_columns=False,
        seed=options.seed,
    )
    trainer = Seq2SeqTrainer(
        model=loaded.model,
        args=args,
        train_dataset=prepared,
        data_collator=ReferenceCollator(
            loaded.processor, loaded.model.config.decoder_start_token_id
        ),
        processing_class=loaded.processor.feature_extractor,
        callbacks=[evaluator, BudgetStop(evaluator.train_seconds, options.budget_seconds)],
    )
    baseline = evaluate_rows(loaded, eval_rows, progress=False).score.wer
    trainer.train()
    epochs = trainer.state.epoch or 0
    audio = sum(r.duration or 0 for r in rows) * epochs
    train_seconds = evaluator.curve[-1][0]
    return RecipeResult(
        audio_seconds_per_second=round(audio / train_seconds, 2),
        train_seconds=train_seconds,
        wer=evaluator.curve[-1][1],
        curve=[(0.0, baseline), *evaluator.curve],
        eval_audio_seconds_per_second=eval_speed(eval_rows, evaluator.eval_seconds),
        terms=term_dict(evaluator.last_terms),
    )


def eval_speed(rows: list[Row], seconds: list[float]) -> float:
    """Audio seconds evaluated per second, over evaluations of ``rows`` lasting ``seconds``."""
    audio = sum(r.duration or 0 for r in rows)
    return round(audio * len(seconds) / sum(seconds), 2) if seconds else 0.0


def run_asrtune(options: BenchOptions, eval_rows: list[Row], baseline_wer: float) -> RecipeResult:
    epochs = options.asrtune_epochs or TRAINING_DEFAULTS["num_train_epochs"]
    overrides = {
        "num_train_epochs": epochs if options.budget_seconds is None else 1000,
        "report_to": "none",
        "save_strategy": "no",
        "load_best_model_at_end": False,
        "seed": options.seed,
        "terms": options.terms,
        **options.asrtune_overrides,
    }
    holder: dict[str, Any] = {}

    def stop_after_budget(trainer: Any) -> None:
        clock = lambda: time.perf_counter() - trainer.clock_start - trainer.eval_seconds  # noqa: E731
        trainer.add_callback(BudgetStop(clock, options.budget_seconds))
        holder["trainer"] = trainer

    result = asrtune_train(
        model=options.model,
        train_manifest=options.train_manifest,
        eval_manifest=options.eval_manifest,
        output_dir=str(Path(options.output_dir) / "asrtune"),
        trainer_hook=stop_after_budget,
        **overrides,
    )
    history = holder["trainer"].state.log_history
    curve = [(0.0, baseline_wer)] + [
        (e["eval_train_seconds"], e["eval_wer"]) for e in history if "eval_train_seconds" in e
    ]
    metrics = result.train_metrics
    train_seconds = curve[-1][0]
    audio = metrics["audio_seconds_per_epoch"] * (holder["trainer"].state.epoch or 0)
    return RecipeResult(
        audio_seconds_per_second=round(audio / train_seconds, 2),
        train_seconds=train_seconds,
        wer=curve[-1][1],
        curve=curve,
        eval_audio_seconds_per_second=eval_speed(
            eval_rows, [e["eval_runtime"] for e in history if "eval_train_seconds" in e]
        ),
        terms=term_dict(getattr(holder["trainer"].last_eval, "terms", None)),
    )


def time_to_wer(curve: list[tuple[float, float]], target: float) -> float | None:
    """Training seconds at the first evaluation reaching ``target`` WER (None if never)."""
    return next((seconds for seconds, wer in curve[1:] if wer <= target), None)


def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Run both recipes and write ``bench.json``-shaped results (returned)."""
    train = load_rows(options.train_manifest)
    evaluation = load_rows(options.eval_manifest, nonspeech_ok=True)
    if train.invalid or evaluation.invalid:
        raise AsrtuneError("the bench needs valid manifests: run 'asrtune data check' first")
    terms = read_terms(options.terms) if options.terms else None
    log.info(
        "reference recipe: Seq2SeqTrainer, clips padded to 30 s, lr %g, batch %d",
        options.reference_learning_rate,
        options.reference_batch_size,
    )
    reference = run_reference(options, train.rows, evaluation.rows, terms)
    log.info("asrtune defaults")
    ours = run_asrtune(options, evaluation.rows, reference.curve[0][1])
    reached = time_to_wer(ours.curve, reference.wer)
    recalls = {
        name: (result.terms or {}).get("recall")
        for name, result in (("reference", reference), ("asrtune", ours))
    }
    return {
        **({"term_recall": recalls} if terms is not None else {}),
        "reference": asdict(reference),
        "asrtune": asdict(ours),
        "throughput_ratio": round(
            ours.audio_seconds_per_second / reference.audio_seconds_per_second, 2
        ),
        "time_to_reference_wer_ratio": (
            round(reached / reference.train_seconds, 3) if reached is not None else None
        ),
        # >= 1: evaluating data is no slower than an asrtune training epoch over it
        "eval_to_train_speed_ratio": round(
            ours.eval_audio_seconds_per_second / ours.audio_seconds_per_second, 2
        ),
        "options": {k: v for k, v in asdict(options).items()},
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
    }


def write_bench(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def plot_curves(result: dict[str, Any], path: str | Path) -> Path:
    """WER against training time for both recipes (needs matplotlib: the bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise AsrtuneError("plotting needs matplotlib: pip install 'asrtune[bench]'") from exc
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, style in (("reference", "o--"), ("asrtune", "s-")):
        curve = result[name]["curve"]
        ax.plot([c[0] for c in curve], [100 * c[1] for c in curve], style, label=name)
    ax.axhline(100 * result["reference"]["wer"], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("training time (s), evaluation excluded")
    ax.set_ylabel("WER (%)")
    ax.set_title(f"{Path(result['options']['model']).name} on {result['device']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
