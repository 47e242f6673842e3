"""Crash-consistent checkpoints: ``--resume`` takes the newest complete checkpoint, and a
``kill -9`` during a checkpoint save or the final save leaves a state to resume from.

The kills are real: ``asrtune train`` runs in a subprocess whose save is patched (by the
script below, in the test only) to SIGKILL itself in the middle of writing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from asrtune.checkpoints import (
    STAGING,
    checkpoint_problem,
    newest_complete_checkpoint,
    rotate_complete_checkpoints,
)
from asrtune.cli import main
from tests.conftest import write_dataset

REPO = Path(__file__).resolve().parents[1]

#: A script that runs ``asrtune <args>`` and kills itself (SIGKILL, as a preempted machine
#: is) in the middle of a save. ``{where}``: "checkpoint" kills a checkpoint save of step
#: ``{step}`` after its model and optimizer are written, before its trainer state (in the
#: main process; torchrun then stops the others); "model" kills the first write of a
#: weights file halfway through it.
KILL_IN_SAVE = """
import os, signal, sys
import transformers
import transformers.modeling_utils as modeling
from asrtune.cli import main

WHERE, STEP = {where!r}, {step}
save_optimizer = transformers.Trainer._save_optimizer_and_scheduler
save_weights = modeling.safe_save_file


def kill():
    os.kill(os.getpid(), signal.SIGKILL)


def save_optimizer_then_die(self, output_dir):
    save_optimizer(self, output_dir)
    if WHERE == "checkpoint" and self.state.global_step == STEP and self.args.should_save:
        kill()


def write_half_then_die(tensors, filename, metadata=None):
    if WHERE != "model":
        return save_weights(tensors, filename, metadata=metadata)
    save_weights(tensors, filename + ".whole", metadata=metadata)
    data = open(filename + ".whole", "rb").read()
    with open(filename, "wb") as handle:
        handle.write(data[: len(data) // 2])
    kill()


transformers.Trainer._save_optimizer_and_scheduler = save_optimizer_then_die
modeling.safe_save_file = write_half_then_die
sys.exit(main(sys.argv[1:]))
"""

# 9 clips, 4 a step, 2 epochs: 6 steps; a checkpoint every 2 (all kept). Adam (the
# default optimizer) keeps a state, so resuming with a fresh one would change the weights.
FLAGS = [
    "--report_to",
    "none",
    "--no_pack",
    "--nonspeech_share",
    "0",
    "--per_device_train_batch_size",
    "4",
    "--num_train_epochs",
    "2",
    "--learning_rate",
    "1e-3",
    "--warmup_steps",
    "0",
    "--save_strategy",
    "steps",
    "--save_steps",
    "2",
    "--save_total_limit",
    "3",
]


def run_killed(args: list[str], where: str, step: int, folder: Path) -> str:
    """Run ``asrtune <args>`` in a subprocess that kills itself in a save; its output."""
    script = folder / "kill_in_save.py"
    script.write_text(KILL_IN_SAVE.format(where=where, step=step))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    process = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == -9, process.stdout[-2000:] + process.stderr[-3000:]
    return process.stderr


def _step(out: Path) -> int:
    return json.loads((out / "train_results.json").read_text())["global_step"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], atol=1e-6, rtol=1e-5, msg=key)


@pytest.fixture(scope="module")
def nine_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), 9)


@pytest.fixture(scope="module")
def train_args(tiny_whisper: Path, nine_clips: Path) -> list[str]:
    return ["train", "--model", str(tiny_whisper), "--train-manifest", str(nine_clips), *FLAGS]


@pytest.fixture(scope="module")
def whole(train_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run: checkpoints 2, 4 and 6, the final model."""
    out = tmp_path_factory.mktemp("runs") / "whole"
    assert main([*train_args, "--output_dir", str(out)]) == 0
    assert _step(out) == 6
    return out


def _copy_checkpoint(whole: Path, out: Path, step: int, without: str | None = None) -> Path:
    folder = shutil.copytree(whole / f"checkpoint-{step}", out / f"checkpoint-{step}")
    if without:
        (folder / without).unlink()
    return folder


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize(
    "broken",
    [
        {6: "trainer_state.json", 4: "optimizer.pt"},
        {4: "optimizer.pt"},  # transformers would resume from it with a fresh Adam, silently
    ],
    ids=["no-state-and-no-optimizer", "no-optimizer"],
)
def test_resume_passes_over_incomplete_checkpoints_and_ends_like_an_uninterrupted_run(
    whole: Path, train_args: list[str], tmp_path: Path, broken: dict[int, str]
) -> None:
    """checkpoint-6 without trainer_state.json and/or checkpoint-4 without optimizer.pt
    (a fresh Adam would give other weights) next to a complete checkpoint-2: the run
    resumes from checkpoint-2, says so in one warning, and ends where the whole run ended."""
    out = tmp_path / "out"
    _copy_checkpoint(whole, out, 2)
    for step, missing in broken.items():
        _copy_checkpoint(whole, out, step, without=missing)
    warnings = _Warnings()
    logging.getLogger("asrtune").addHandler(warnings)
    try:
        assert main([*train_args, "--output_dir", str(out), "--resume"]) == 0
    finally:
        logging.getLogger("asrtune").removeHandler(warnings)
    resume = [m for m in warnings.messages if "--resume" in m]
    assert len(resume) == 1 and "\n" not in resume[0], warnings.messages
    passed_over = ", ".join(f"checkpoint-{step} (no {missing})" for step, missing in broken.items())
    assert (
        resume[0] == f"--resume: passing over incomplete {passed_over}; resuming from checkpoint-2"
    )
    assert _step(out) == 6
    assert_same_weights(whole, out)
    # the checkpoints written again replaced the incomplete ones
    assert [checkpoint_problem(out / f"checkpoint-{n}") for n in (2, 4, 6)] == [None] * 3
    assert not (out / STAGING).exists()


def test_resume_without_a_complete_checkpoint_is_a_one_line_error(
    whole: Path, train_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    _copy_checkpoint(whole, out, 2, without="optimizer.pt")
    _copy_checkpoint(whole, out, 4, without="trainer_state.json")
    assert main([*train_args, "--output_dir", str(out), "--resume"]) == 2
    error = [x for x in capsys.readouterr().err.splitlines() if x.startswith("asrtune: error")]
    assert len(error) == 1 and "no complete checkpoint" in error[0], error
    assert "checkpoint-4 (no trainer_state.json), checkpoint-2 (no optimizer.pt)" in error[0]
    assert "without --resume" in error[0]


def test_kill_9_during_a_checkpoint_save_then_resume_ends_like_an_uninterrupted_run(
    whole: Path, train_args: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_killed([*train_args, "--output_dir", str(out)], "checkpoint", 4, tmp_path)
    # checkpoint-4 was being written aside: no half checkpoint-4, checkpoint-2 intact
    assert (out / STAGING / "checkpoint-4" / "optimizer.pt").is_file()
    assert not (out / "checkpoint-4").exists()
    assert checkpoint_problem(out / "checkpoint-2") is None
    assert main([*train_args, "--output_dir", str(out), "--resume"]) == 0
    assert _step(out) == 6
    assert_same_weights(whole, out)
    assert not (out / STAGING).exists()


def test_kill_9_during_a_lora_checkpoint_save_then_resume_ends_like_an_uninterrupted_run(
    train_args: list[str], tmp_path: Path
) -> None:
    """A LoRA checkpoint holds the adapter's weights, not the model's: it is complete with
    them, and the resumed adapter is the uninterrupted run's."""
    lora = [*train_args, "--lora", "--learning_rate", "1e-2"]
    whole = tmp_path / "whole"
    assert main([*lora, "--output_dir", str(whole)]) == 0
    out = tmp_path / "out"
    run_killed([*lora, "--output_dir", str(out)], "checkpoint", 4, tmp_path)
    assert not (out / "checkpoint-4").exists()
    assert (out / "checkpoint-2" / "adapter_model.safetensors").is_file()
    assert not (out / "checkpoint-2" / "model.safetensors").exists()
    assert checkpoint_problem(out / "checkpoint-2") is None
    assert main([*lora, "--output_dir", str(out), "--resume"]) == 0
    assert _step(out) == 6
    first = load_file(str(whole / "adapter_model.safetensors"))
    second = load_file(str(out / "adapter_model.safetensors"))
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], atol=1e-6, rtol=1e-5, msg=key)


def test_kill_9_during_the_final_save_leaves_the_previous_model_whole(
    whole: Path, train_args: list[str], tmp_path: Path
) -> None:
    """A finished run resumed from its last checkpoint (nothing left to train) is killed
    halfway through writing its final weights: OUT keeps the model it had."""
    out = Path(shutil.copytree(whole, tmp_path / "out"))
    before = (out / "model.safetensors").read_bytes()
    run_killed([*train_args, "--output_dir", str(out), "--resume"], "model", 0, tmp_path)
    assert (out / "model.safetensors").read_bytes() == before
    assert_same_weights(whole, out)


def test_a_lora_checkpoint_is_complete_with_its_adapter_weights(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    save_file(
        {"base_model.model.q.lora_A.weight": torch.zeros(2, 4)},
        folder / "adapter_model.safetensors",
    )
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2}))
    torch.save({"state": {}, "param_groups": []}, folder / "optimizer.pt")
    torch.save({"last_epoch": 3}, folder / "scheduler.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 3}))
    assert checkpoint_problem(folder) is None
    (folder / "adapter_config.json").unlink()
    assert checkpoint_problem(folder) == "no adapter_config.json"
    (folder / "adapter_model.safetensors").unlink()
    assert checkpoint_problem(folder) == "no model weights"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("model.safetensors", "model.safetensors is unreadable (SafetensorError)"),
        ("optimizer.pt", "optimizer.pt is truncated"),
        ("scheduler.pt", "scheduler.pt is truncated"),
        ("rng_state.pth", "rng_state.pth is truncated"),
        ("trainer_state.json", "trainer_state.json is unreadable (JSONDecodeError)"),
    ],
)
def test_a_truncated_file_makes_a_checkpoint_incomplete(
    whole: Path, tmp_path: Path, name: str, problem: str
) -> None:
    folder = _copy_checkpoint(whole, tmp_path, 4)
    _truncate(folder / name)
    assert checkpoint_problem(folder) == problem
    _copy_checkpoint(whole, tmp_path, 2)
    point = newest_complete_checkpoint(tmp_path)
    assert point.checkpoint == tmp_path / "checkpoint-2"
    assert point.passed_over == ((folder, problem),)


def test_rotation_keeps_the_newest_complete_checkpoint_over_a_newer_numbered_broken_one(
    whole: Path, tmp_path: Path
) -> None:
    """save_total_limit 1 after resuming from checkpoint-2 next to a broken checkpoint-6:
    transformers' rotation (numeric order when the mtimes are close) would keep the
    broken checkpoint-6 and delete the new checkpoint-4; only complete ones count here."""
    for step in (2, 4):
        _copy_checkpoint(whole, tmp_path, step)
    _copy_checkpoint(whole, tmp_path, 6, without="trainer_state.json")
    now = time.time()
    for step in (2, 6, 4):  # written in this order, all within a second
        os.utime(tmp_path / f"checkpoint-{step}", (now, now))
        now += 0.1
    deleted = rotate_complete_checkpoints(tmp_path, 1, keep={tmp_path / "checkpoint-4"})
    assert deleted == [tmp_path / "checkpoint-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-6"]
