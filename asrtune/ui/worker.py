"""The training worker: one process per run, started by :func:`asrtune.ui.jobs.start_run` as
``python -m asrtune.ui.worker RUN_DIR``. It calls the library (``asrtune.api.evaluate`` for
the baseline, then ``asrtune.api.train``), never the CLI.

It reads ``RUN_DIR/run.json`` and writes, as it goes:

* ``status.json`` — state (running / done / failed / stopped), phase, step, epoch, ETA and a
  heartbeat (``updated``), rewritten atomically;
* ``metrics.jsonl`` — one line per Trainer log (loss, learning rate, eval WER/CER) plus the
  baseline's WER/CER;
* the log: its stdout and stderr, which the parent points at ``log.txt``.

Stopping: the file ``RUN_DIR/stop`` makes the Trainer stop after the current step (the model
is then saved and evaluated as usual); SIGTERM stops at once, in any phase.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from asrtune.ui.project import read_json, write_json_atomic

log = logging.getLogger("asrtune")

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"
RUN_FILE = "run.json"
STOP_FILE = "stop"
OUTPUT_DIR = "model"
HEARTBEAT_SECONDS = 2.0


class StopRequested(BaseException):
    """Raised by the SIGTERM handler; a BaseException so no ``except Exception`` eats it."""


class StatusWriter:
    """Owns status.json while the worker lives: every write is the whole state, atomic."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STATUS_FILE
        self.state: dict[str, Any] = read_json(self.path, {}) or {}
        self.lock = threading.RLock()
        self.stopped = threading.Event()

    def update(self, **changes: Any) -> None:
        with self.lock:
            self.state.update(changes, updated=time.time())
            write_json_atomic(self.path, self.state)

    def heartbeat(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            self.update()


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=float) + "\n")


def make_callback(run_dir: Path, status: StatusWriter) -> Any:
    """A TrainerCallback that reports progress, logs metrics and honours stop requests."""
    from transformers import TrainerCallback

    class UiCallback(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.time()
            self.first_step = 0
            self.last_write = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started, self.first_step = time.time(), state.global_step
            status.update(
                phase="training",
                message="training",
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=state.epoch or 0.0,
                num_train_epochs=state.num_train_epochs,
                train_started=self.started,
            )

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now = time.time()
            done = state.global_step - self.first_step
            left = max(state.max_steps - state.global_step, 0)
            eta = (now - self.started) / done * left if done else None
            if now - self.last_write > 0.5 or left == 0:
                self.last_write = now
                status.update(step=state.global_step, epoch=state.epoch, eta_seconds=eta)
            if (run_dir / STOP_FILE).exists():
                control.should_training_stop = True
                status.update(message="stopping after this step (the model is kept)")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            """Which checkpoint the final model is (the best one was reloaded)."""
            best = state.best_global_step if args.load_best_model_at_end else None
            if best:
                epoch = next(
                    (e.get("epoch") for e in state.log_history if e.get("step") == best), None
                )
                record = {"event": "best_checkpoint", "step": best, "epoch": epoch}
                append_metrics(run_dir, {**record, "time": time.time()})

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            record = {"step": state.global_step, "epoch": state.epoch, "time": time.time()}
            append_metrics(run_dir, {**record, **(logs or {})})
            if logs and "eval_wer" in logs:
                status.update(
                    last_eval_wer=logs["eval_wer"],
                    last_eval_cer=logs.get("eval_cer"),
                    headline="cer" if args.metric_for_best_model == "cer" else "wer",
                )

    return UiCallback()


def run_baseline(run_dir: Path, spec: dict[str, Any], status: StatusWriter) -> None:
    """WER/CER of the base model on the eval split, written where ``asrtune push`` finds it
    (OUT/baseline_results.json) and to metrics.jsonl."""
    from asrtune.api import evaluate
    from asrtune.inference import DecodingOptions

    options = spec["options"]
    status.update(phase="baseline", message="evaluating the base model (baseline WER)")
    log.info("baseline: evaluating %s on %s", options["model"], options["eval_manifest"])
    decoding = DecodingOptions(
        language=options.get("language"),
        batch_size=int(options.get("per_device_eval_batch_size") or 16),
    )
    result = evaluate(
        options["model"],
        options["eval_manifest"],
        output=Path(options["output_dir"]) / "baseline_results.json",
        options=decoding,
    )
    score = result.report()  # the scores, loops and words said on non-speech probes
    append_metrics(run_dir, {"event": "baseline", "step": 0, "time": time.time(), **score})
    status.update(baseline_wer=score["wer"], baseline_cer=score["cer"], headline=score["headline"])
    log.info("baseline WER %.1f%%, CER %.1f%%", 100 * score["wer"], 100 * score["cer"])


def run(run_dir: Path) -> int:
    spec = read_json(run_dir / RUN_FILE)
    if not spec:
        print(f"no {RUN_FILE} in {run_dir}", file=sys.stderr)
        return 2
    status = StatusWriter(run_dir)
    status.update(
        state="running", phase="starting", message="loading", started=time.time(), pid=os.getpid()
    )
    threading.Thread(target=status.heartbeat, daemon=True).start()
    log.info("run %s: %s", run_dir.name, spec.get("description", ""))
    code = 0
    try:
        if spec.get("baseline") and spec["options"].get("eval_manifest"):
            run_baseline(run_dir, spec, status)
        if (run_dir / STOP_FILE).exists():
            raise StopRequested
        from asrtune.api import train

        status.update(phase="loading", message="checking data and loading the model")
        result = train(
            trainer_hook=lambda trainer: trainer.add_callback(make_callback(run_dir, status)),
            **spec["options"],
        )
        final: dict[str, Any] = {"train_loss": result.train_metrics.get("train_loss")}
        if result.eval_result is not None:
            final.update(
                final_wer=result.eval_result.score.wer, final_cer=result.eval_result.score.cer
            )
        stopped = (run_dir / STOP_FILE).exists()
        status.update(
            state="stopped" if stopped else "done",
            phase="finished",
            message="stopped early; the model so far was saved" if stopped else "done",
            eta_seconds=0,
            **final,
        )
        log.info("finished: %s", json.dumps(final))
    except StopRequested:
        status.update(state="stopped", phase="finished", message="stopped", eta_seconds=None)
        log.warning("stopped on request")
        code = 1
    except Exception as exc:  # every failure ends up in the status and the log
        from asrtune.errors import AsrtuneError

        traceback.print_exc()
        message = str(exc) if isinstance(exc, AsrtuneError) else f"{type(exc).__name__}: {exc}"
        status.update(state="failed", phase="finished", error=message, message="failed")
        code = 1
    finally:
        status.update(finished=time.time())
        status.stopped.set()
    return code


def _on_sigterm(signum: int, frame: Any) -> None:
    raise StopRequested


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m asrtune.ui.worker RUN_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    signal.signal(signal.SIGTERM, _on_sigterm)
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
