"""Checkpoints and final models that a kill at any moment cannot break.

transformers' Trainer writes ``checkpoint-N`` in place, file by file (``trainer_state.json``
last), and its ``get_last_checkpoint`` takes the highest N whether or not the folder was
written completely: a run killed during a save then fails to resume, or resumes with a fresh
optimizer without a word. Here:

- every checkpoint is written in ``OUT/.partial/checkpoint-N`` and renamed to
  ``OUT/checkpoint-N`` once every process has written its part (a rename within one file
  system is atomic), so a ``checkpoint-N`` folder is complete or absent, and the previous
  ones stay until the new one is in place (:class:`CrashConsistentCheckpoints`);
- the final model is written in ``OUT/.partial/model`` and then moved into OUT file by file
  (:func:`staged_output`, :func:`move_files_into`): a kill while the weights are written
  leaves the previous model in OUT as it was;
- ``--resume`` takes the newest *complete* checkpoint: trainer state, model (or LoRA adapter)
  weights, optimizer and scheduler present and readable (:func:`checkpoint_problem`), and
  names the incomplete ones it passes over (:func:`newest_complete_checkpoint`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints

#: Where checkpoints and the final model are written before they are moved into place.
STAGING = ".partial"
TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
# weights of a full model or a LoRA adapter, as save_pretrained writes them (first found wins)
_SINGLE_WEIGHTS = (
    "model.safetensors",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "adapter_model.bin",
)
_SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def staging_folder(run_dir: str | Path) -> Path:
    """The folder under ``run_dir`` that saves are written in before they are moved out."""
    return Path(run_dir) / STAGING


def checkpoint_step(path: Path) -> int | None:
    """N of a ``checkpoint-N`` folder name, else None."""
    match = _CHECKPOINT.match(path.name)
    return int(match.group(1)) if match else None


def checkpoint_folders(run_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``run_dir``, highest N first."""
    found = [p for p in run_dir.iterdir() if checkpoint_step(p) is not None and p.is_dir()]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0, reverse=True)


# ---- is a checkpoint complete? ----


def _unreadable(path: Path) -> str | None:
    """Why the file at ``path`` cannot be read back (cheaply: headers and directories,
    not the data), else None. A safetensors file's header must cover the whole file; a
    torch file (a zip archive) must end with its central directory, which ``torch.save``
    writes last; a JSON file must parse."""
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), "pt"):
                pass
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif not zipfile.is_zipfile(path):
            return f"{path.name} is truncated"
    except Exception as exc:  # safetensors raises its own error type; any failure counts
        return f"{path.name} is unreadable ({type(exc).__name__})"
    return None


def _missing_or_unreadable(folder: Path, name: str) -> str | None:
    path = folder / name
    return f"no {name}" if not path.is_file() else _unreadable(path)


def _weights_problem(folder: Path) -> str | None:
    """Why the model (or adapter) weights in ``folder`` cannot be loaded, else None."""
    for name in _SINGLE_WEIGHTS:
        if (folder / name).is_file():
            problem = _unreadable(folder / name)
            if problem is None and name.startswith("adapter_"):
                problem = _missing_or_unreadable(folder, "adapter_config.json")
            return problem
    for name in _SHARD_INDEXES:
        if (folder / name).is_file():
            return _shards_problem(folder, name)
    if _sharded_model_saved(folder):
        return None
    return "no model weights"


def _shards_problem(folder: Path, index_name: str) -> str | None:
    if problem := _unreadable(folder / index_name):
        return problem
    index = json.loads((folder / index_name).read_text(encoding="utf-8"))
    for shard in sorted(set(index.get("weight_map", {}).values())):
        if problem := _missing_or_unreadable(folder, shard):
            return problem
    return None


def _sharded_model_saved(folder: Path) -> bool:
    """FSDP's own checkpoint of the model (a full state dict file, or a
    torch.distributed.checkpoint folder, whose ``.metadata`` is written last) or a
    DeepSpeed one (``latest`` names its folder)."""
    if (folder / "pytorch_model_fsdp.bin").is_file():
        return True
    if any(p.is_dir() and (p / ".metadata").is_file() for p in folder.glob("pytorch_model_fsdp_*")):
        return True
    return _deepspeed_saved(folder)


def _deepspeed_saved(folder: Path) -> bool:
    latest = folder / "latest"
    return latest.is_file() and (folder / latest.read_text().strip()).is_dir()


def _optimizer_problem(folder: Path) -> str | None:
    """Why the optimizer and scheduler states cannot be restored, else None (DeepSpeed
    keeps both in its own folder)."""
    if _deepspeed_saved(folder):
        return None
    if (folder / "optimizer.pt").is_file():
        problem = _unreadable(folder / "optimizer.pt")
    elif (folder / "optimizer.bin").is_file():  # FSDP, full state dict
        problem = _unreadable(folder / "optimizer.bin")
    elif any(p.is_dir() for p in folder.glob("optimizer_*")):  # FSDP, sharded
        problem = None
    else:
        problem = "no optimizer.pt"
    return problem or _missing_or_unreadable(folder, "scheduler.pt")


def checkpoint_problem(folder: Path, need_optimizer: bool = True) -> str | None:
    """Why ``folder`` cannot be resumed from, else None (it is complete).

    Complete means: ``trainer_state.json`` parses; the model weights (or the LoRA
    adapter's, with its config) open; ``optimizer.pt`` and ``scheduler.pt`` are there and
    readable (unless ``need_optimizer`` is False: checkpoints saved with
    ``--save_only_model``); any RNG or scaler state there is readable. Reads headers and
    archive directories only, never the tensors: a few milliseconds per checkpoint.
    """
    checks = [
        _missing_or_unreadable(folder, TRAINER_STATE),
        _weights_problem(folder),
        _optimizer_problem(folder) if need_optimizer else None,
    ]
    extras = sorted(folder.glob("rng_state*.pth")) + sorted(folder.glob("scaler.pt"))
    checks += [_unreadable(path) for path in extras]
    return next((problem for problem in checks if problem), None)


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint to resume from (None: no complete one) and each newer or
    unusable ``checkpoint-N`` passed over, with the reason."""

    checkpoint: Path | None
    passed_over: tuple[tuple[Path, str], ...]

    def describe_passed_over(self) -> str:
        """``checkpoint-6 (no trainer_state.json), checkpoint-5 (no optimizer.pt)``."""
        return ", ".join(f"{path.name} ({why})" for path, why in self.passed_over)


def newest_complete_checkpoint(run_dir: Path) -> ResumePoint:
    """The highest-numbered complete ``checkpoint-N`` of ``run_dir`` and the incomplete
    ones above it (see :func:`checkpoint_problem`)."""
    passed_over: list[tuple[Path, str]] = []
    for folder in checkpoint_folders(run_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            return ResumePoint(folder, tuple(passed_over))
        passed_over.append((folder, problem))
    return ResumePoint(None, tuple(passed_over))


# ---- writing aside, then into place ----


def replace_folder(staged: Path, final: Path) -> None:
    """Put the complete folder ``staged`` at ``final`` by renaming it, replacing what was
    there (moved aside first: a folder cannot be renamed over a non-empty one)."""
    if final.exists():
        aside = staged.with_name(staged.name + ".replaced")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
        os.replace(staged, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staged, final)


def move_files_into(staged: Path, final: Path) -> None:
    """Move every entry of ``staged`` into ``final`` (renames, each atomic), replacing
    entries of the same name; ``final``'s other files stay. Weights go last, so that until
    they move, OUT holds the previous model's complete weights."""
    final.mkdir(parents=True, exist_ok=True)
    entries = sorted(staged.iterdir(), key=lambda p: (p.name in _SINGLE_WEIGHTS, p.name))
    for entry in entries:
        if entry.is_dir():
            replace_folder(entry, final / entry.name)
        else:
            os.replace(entry, final / entry.name)


@contextlib.contextmanager
def staged_output(final: Path, main: bool, wait: Callable[[], None]) -> Iterator[Path]:
    """A fresh folder to write ``final``'s new files in (every process gets its path);
    when the block ends, all processes have finished (``wait()``, a barrier) and the main
    one moves the files into ``final`` (:func:`move_files_into`). An exception in the
    block leaves ``final`` untouched."""
    staged = staging_folder(final) / "model"
    if main:
        shutil.rmtree(staged, ignore_errors=True)
    wait()
    yield staged
    wait()
    if main:
        move_files_into(staged, final)
        _remove_staging(final)
    wait()


def _remove_staging(run_dir: Path) -> None:
    """Drop the staging folder with what killed saves left in it."""
    shutil.rmtree(staging_folder(run_dir), ignore_errors=True)


def rotate_complete_checkpoints(
    run_dir: Path, limit: int | None, keep: set[Path], need_optimizer: bool = True
) -> list[Path]:
    """Delete the oldest complete checkpoints beyond ``limit`` (``--save_total_limit``),
    never one in ``keep`` (the newest, the best). Incomplete folders are neither counted
    nor deleted, so the only complete checkpoint is never the one to go. Oldest by
    modification time, as transformers rotates. Returns the folders deleted."""
    if not limit or limit <= 0:
        return []
    ordered = [Path(p) for p in sort_checkpoints(str(run_dir), use_mtime=True)]
    complete = [p for p in ordered if checkpoint_problem(p, need_optimizer) is None]
    kept = {folder.resolve() for folder in keep}
    deletable = [p for p in complete if p.resolve() not in kept]
    deleted = deletable[: max(len(complete) - limit, 0)]
    for folder in deleted:
        shutil.rmtree(folder, ignore_errors=True)
    return deleted


class CrashConsistentCheckpoints:
    """Trainer mixin: each ``checkpoint-N`` is written in ``OUT/.partial/checkpoint-N``
    (by every process: model, optimizer, RNG states, trainer state) and renamed into
    place by the main process after a barrier; then the complete checkpoints are rotated
    (``save_total_limit``). Put it before ``Trainer`` in the bases.

    Only where the Trainer puts the checkpoint changes (``_get_output_dir`` answers the
    staging folder during the save); what it writes and when stays transformers'.
    """

    _staging_checkpoint = False

    def _get_output_dir(self, trial: Any) -> str:
        run_dir = super()._get_output_dir(trial)  # type: ignore[misc]
        return str(staging_folder(run_dir)) if self._staging_checkpoint else run_dir

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        trainer: Any = self
        run_dir = Path(super()._get_output_dir(trial))  # type: ignore[misc]
        name = f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}"
        staged, final = staging_folder(run_dir) / name, run_dir / name
        main, wait = trainer.args.should_save, trainer.accelerator.wait_for_everyone
        if main:  # what a killed save of this step left
            shutil.rmtree(staged, ignore_errors=True)
        wait()
        self._staging_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)  # type: ignore[misc]
        finally:
            self._staging_checkpoint = False
        wait()  # every process has written its part
        best = trainer.state.best_model_checkpoint
        if best is not None and Path(best).parent == staging_folder(run_dir):
            trainer.state.best_model_checkpoint = str(run_dir / Path(best).name)
            if main:  # the state saved in the checkpoint names the staging folder
                trainer.state.save_to_json(str(staged / TRAINER_STATE))
        if main:
            replace_folder(staged, final)
            _remove_staging(run_dir)
            best = trainer.state.best_model_checkpoint
            keep = {final} | ({Path(best)} if best else set())
            rotate_complete_checkpoints(
                run_dir, trainer.args.save_total_limit, keep, not trainer.args.save_only_model
            )
        wait()
