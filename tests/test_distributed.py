"""Training and evaluation under torchrun: 2 CPU processes (gloo), as users launch them.

Each test launches real processes (``python -m torch.distributed.run``) on tiny models and
compares with single-process runs of the same data.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from asrtune.checkpoints import STAGING
from asrtune.cli import main
from asrtune.models import FAMILIES, load_model
from asrtune.models.tiny_voxtral import make_tiny_voxtral
from tests.conftest import write_dataset, write_long_segments
from tests.test_checkpoints import KILL_IN_SAVE

REPO = Path(__file__).resolve().parents[1]
# SGD and a constant rate: equal gradients give equal weights, with no Adam normalization
# turning float noise in near-zero gradients into full-size steps.
EXACT = [
    "--report_to",
    "none",
    "--no_pack",
    "--optim",
    "sgd",
    "--learning_rate",
    "0.5",
    "--lr_scheduler_type",
    "constant",
    "--warmup_steps",
    "0",
    "--logging_steps",
    "4",  # 6 steps: the loss of the last 2 is added at the end, apart from the logs
    "--save_strategy",
    "no",
]


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _launch(
    args: list[str], nproc: int = 2, launcher: list[str] | None = None, script: str | None = None
) -> subprocess.Popen:
    launcher = launcher or ["--standalone", "--nproc_per_node", str(nproc)]
    target = [script] if script else ["-m", "asrtune.cli"]
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, *target, *args]
    return subprocess.Popen(
        command,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _torchrun(args: list[str], **kwargs: object) -> str:
    process = _launch(args, **kwargs)  # type: ignore[arg-type]
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    return output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _results(out: Path) -> dict:
    return json.loads((out / "train_results.json").read_text())


def _assert_same_weights(a: Path, b: Path, atol: float = 1e-5) -> None:
    first, second = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], atol=atol, rtol=1e-4, msg=key)


@pytest.fixture(scope="module")
def nine_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """9 clips: with a global batch of 4, the last step holds 1 item for 2 processes."""
    return write_dataset(tmp_path_factory.mktemp("data"), 9)


@pytest.fixture(scope="module")
def nine_equal_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """9 clips of 1.5 s: no batch holds padding."""
    return write_dataset(tmp_path_factory.mktemp("data"), 9, step=0.0)


@pytest.fixture(scope="module")
def tiny_voxtral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_voxtral(tmp_path_factory.mktemp("models") / "tiny-voxtral")


def _has_batch_norm(model: Path) -> bool:
    """Whether the model has batch norms (e.g. Parakeet's conformer)."""
    loaded = load_model(str(model))
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in loaded.model.modules())


# Every registered family. Families with batch norms (Parakeet's conformer) train with the
# encoder frozen: a batch norm that trains normalizes each micro-batch with its own
# statistics, so splitting a batch changes the result (on GPUs, asrtune synchronizes them
# across processes: SyncBatchNorm, which gloo lacks); frozen ones use their running
# statistics, as at inference. A family whose padding changes its outputs
# (PADDING_CHANGES_OUTPUTS, e.g. Moonshine's GroupNorm over the padded input) trains on clips
# of one length, which no split pads.
@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_global_batch_trains_alike_however_it_is_split(
    family: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """1 process × 4 = 1 × 2 with accumulation 2 = 2 processes × 2: steps, loss, weights."""
    if family == "voxtral":
        pytest.importorskip("mistral_common")
    padded = getattr(FAMILIES[family].module(), "PADDING_CHANGES_OUTPUTS", False)
    nine_clips = request.getfixturevalue("nine_equal_clips" if padded else "nine_clips")
    model = FAMILIES[family].build_tiny(tmp_path / "base")
    split_flags = ["--freeze_encoder"] if _has_batch_norm(model) else []
    common = ["train", "--model", str(model), "--train-manifest", str(nine_clips), *EXACT]
    common += ["--num_train_epochs", "2", *split_flags]
    runs = {
        "1x4": ["--per_device_train_batch_size", "4"],
        "1x2xGA2": ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2"],
    }
    for name, flags in runs.items():
        assert main([*common, "--output_dir", str(tmp_path / name), *flags]) == 0
    _torchrun(
        [*common, "--output_dir", str(tmp_path / "2x2"), "--per_device_train_batch_size", "2"]
    )

    results = {name: _results(tmp_path / name) for name in ("1x4", "1x2xGA2", "2x2")}
    assert {r["global_step"] for r in results.values()} == {6}  # ceil(9 / 4) × 2 epochs
    losses = [r["train_loss"] for r in results.values()]
    assert max(losses) - min(losses) < 1e-4 * abs(losses[0])
    _assert_same_weights(tmp_path / "1x4", tmp_path / "1x2xGA2")
    _assert_same_weights(tmp_path / "1x4", tmp_path / "2x2")
    before = load_file(str(Path(model) / "model.safetensors"))
    after = load_file(str(tmp_path / "2x2" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it did train


@pytest.mark.parametrize("seed", [2])
def test_repacked_epochs_with_the_mix_train_alike_in_two_processes(
    tiny_whisper: Path, tmp_path: Path, seed: int
) -> None:
    """Long segments, packed, Whisper's mix with a single share some epochs cannot give
    from distinct windows: every epoch has the first's length in both processes, and
    2 processes × 2 train what 1 × 4 trains."""
    manifest = write_long_segments(tmp_path / "data")
    exact = [flag for flag in EXACT if flag != "--no_pack"]
    common = ["train", "--model", str(tiny_whisper), "--train-manifest", str(manifest), *exact]
    common += ["--num_train_epochs", "2", "--seed", str(seed), "--single_share", "0.2"]
    one = ["--output_dir", str(tmp_path / "1x4"), "--per_device_train_batch_size", "4"]
    assert main([*common, *one]) == 0
    _torchrun(
        [*common, "--output_dir", str(tmp_path / "2x2"), "--per_device_train_batch_size", "2"]
    )
    results = [_results(tmp_path / name) for name in ("1x4", "2x2")]
    assert results[0]["global_step"] == results[1]["global_step"] == 2 * 4
    assert results[0]["train_loss"] == pytest.approx(results[1]["train_loss"], rel=1e-4)
    _assert_same_weights(tmp_path / "1x4", tmp_path / "2x2")


def test_sharded_evaluation_gives_the_single_process_result(
    talkative_whisper: Path, tmp_path: Path
) -> None:
    manifest = write_dataset(tmp_path / "data", 7)
    args = ["eval", "--model", str(talkative_whisper), "--manifest", str(manifest)]
    # 10 new tokens (6 gave 10 before Whisper's budget was exact; with 6 all say nothing)
    args += ["--precision", "fp32", "--max-new-tokens", "10", "--batch-size", "2"]
    assert main([*args, "--output", str(tmp_path / "one" / "report.json")]) == 0
    _torchrun([*args, "--output", str(tmp_path / "two" / "report.json")])

    def read(name: str) -> tuple[dict, list[dict]]:
        folder = tmp_path / name
        lines = (folder / "report.utterances.jsonl").read_text().splitlines()
        return json.loads((folder / "report.json").read_text()), [json.loads(x) for x in lines]

    (one, one_utts), (two, two_utts) = read("one"), read("two")
    assert [u["hyp"] for u in two_utts] == [u["hyp"] for u in one_utts]  # input order
    assert [u["id"] for u in two_utts] == [f"u{i}" for i in range(7)]
    assert len({u["hyp"] for u in one_utts}) >= 3  # varied hypotheses: the order matters
    assert two["wer"] == one["wer"] and two["num_samples"] == 7


def test_two_nodes_on_one_machine_train_like_one_process(
    tiny_whisper: Path, nine_clips: Path, tmp_path: Path
) -> None:
    common = ["train", "--model", str(tiny_whisper), "--train-manifest", str(nine_clips)]
    common += [*EXACT, "--num_train_epochs", "2"]
    assert main([*common, "--output_dir", str(tmp_path / "1x4")]) == 0
    port = _free_port()
    nodes = [
        _launch(
            [
                *common,
                "--output_dir",
                str(tmp_path / "nodes"),
                "--per_device_train_batch_size",
                "2",
            ],
            launcher=[
                "--nnodes",
                "2",
                "--node_rank",
                str(rank),
                "--nproc_per_node",
                "1",
                "--rdzv_backend",
                "c10d",
                "--rdzv_endpoint",
                f"127.0.0.1:{port}",
            ],
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert _results(tmp_path / "nodes")["global_step"] == 6
    _assert_same_weights(tmp_path / "1x4", tmp_path / "nodes")


KILLER = """
import os, signal, sys
from transformers import TrainerCallback
import asrtune.training
from asrtune.cli import main
from asrtune.models import FAMILIES


class KillAfter(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == {step} and state.is_world_process_zero:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9; torchrun then stops the others


build_trainer = asrtune.training.build_trainer


def build_with_killer(*args, **kwargs):
    trainer = build_trainer(*args, **kwargs)
    trainer.add_callback(KillAfter())
    return trainer


asrtune.training.build_trainer = build_with_killer
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def kill_args(tiny_whisper: Path, nine_clips: Path) -> list[str]:
    """9 steps of 2 processes × 2, a checkpoint every 2 steps."""
    args = ["train", "--model", str(tiny_whisper), "--train-manifest", str(nine_clips), *EXACT]
    args += ["--num_train_epochs", "3", "--per_device_train_batch_size", "2"]
    return [*args, "--save_strategy", "steps", "--save_steps", "2"]


@pytest.fixture(scope="module")
def whole_2x2(kill_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run the killed ones are compared with, uninterrupted."""
    out = tmp_path_factory.mktemp("runs") / "whole"
    _torchrun([*kill_args, "--output_dir", str(out)])
    return out


def test_kill_9_after_a_checkpoint_then_resume_ends_like_an_uninterrupted_run(
    kill_args: list[str], whole_2x2: Path, tmp_path: Path
) -> None:
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER.format(step=5))
    broken = tmp_path / "broken"
    process = _launch([*kill_args, "--output_dir", str(broken)], script=str(killer))
    output, _ = process.communicate(timeout=600)
    assert process.returncode != 0 and "SIGKILL" in output, output[-3000:]
    assert (broken / "checkpoint-4").is_dir() and not (broken / "train_results.json").exists()

    _torchrun([*kill_args, "--output_dir", str(broken), "--resume"])
    assert _results(broken)["global_step"] == _results(whole_2x2)["global_step"] == 9
    _assert_same_weights(whole_2x2, broken)


def test_kill_9_during_a_checkpoint_save_then_resume_ends_like_an_uninterrupted_run(
    kill_args: list[str], whole_2x2: Path, tmp_path: Path
) -> None:
    """The main process is killed while checkpoint-4 is being written (model and
    optimizer done, trainer state not): checkpoint-2 is the one to resume from, and
    every process resumes from it."""
    killer = tmp_path / "kill_in_save.py"
    killer.write_text(KILL_IN_SAVE.format(where="checkpoint", step=4))
    broken = tmp_path / "broken"
    process = _launch([*kill_args, "--output_dir", str(broken)], script=str(killer))
    output, _ = process.communicate(timeout=600)
    assert process.returncode != 0 and "SIGKILL" in output, output[-3000:]
    assert (broken / STAGING / "checkpoint-4" / "optimizer.pt").is_file()
    assert not (broken / "checkpoint-4").exists()

    _torchrun([*kill_args, "--output_dir", str(broken), "--resume"])
    assert _results(broken)["global_step"] == 9
    _assert_same_weights(whole_2x2, broken)
    # renamed into place once both processes had written their RNG states
    assert {p.name for p in (broken / "checkpoint-8").glob("rng_state_*.pth")} == {
        "rng_state_0.pth",
        "rng_state_1.pth",
    }


def test_a_stream_is_split_between_processes_and_every_skip_is_reported(
    tiny_whisper: Path, tmp_path: Path
) -> None:
    manifest = write_dataset(tmp_path / "data", 10)
    lines = manifest.read_text().splitlines()
    for i in (3, 4):  # consecutive rows: one in each process's share
        row = json.loads(lines[i])
        lines[i] = json.dumps({**row, "audio_path": f"audio/missing{i}.wav"})
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = ["train", "--model", str(tiny_whisper), "--train-manifest", str(manifest)]
    args += ["--streaming", "--max_steps", "3", "--per_device_train_batch_size", "2"]
    args += ["--report_to", "none", "--save_strategy", "no", "--output_dir", str(out)]
    _torchrun(args)
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert sorted(s["audio_path"].rsplit("/", 1)[-1] for s in skipped) == [
        "missing3.wav",
        "missing4.wav",
    ]
    assert not list(out.glob("skipped.rank*.jsonl"))
    assert _results(out)["global_step"] == 3


def _eval_logs(out: Path) -> dict:
    checkpoint = sorted(out.glob("checkpoint-*"))[-1]
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return next(e for e in history if "eval_loss" in e)


def test_evaluation_during_training_gives_the_single_process_figures(
    tiny_whisper: Path, nine_clips: Path, tmp_path: Path
) -> None:
    """Eval WER/CER, eval loss and guard sets of 2 processes (each its share of the rows,
    gathered) are a single process's, so the best checkpoint is the same however the run
    is launched."""
    eval_rows = write_dataset(tmp_path / "eval", 7)
    common = ["train", "--model", str(tiny_whisper), "--train-manifest", str(nine_clips)]
    common += ["--eval-manifest", str(eval_rows), *EXACT, "--save_strategy", "epoch"]
    common += ["--num_train_epochs", "1", "--generation_max_length", "8"]
    common += ["--guard", f"general={write_dataset(tmp_path / 'guard', 5, seconds=2.0)}"]
    assert main([*common, "--output_dir", str(tmp_path / "1x4")]) == 0
    _torchrun(
        [*common, "--output_dir", str(tmp_path / "2x2"), "--per_device_train_batch_size", "2"]
    )
    one, two = _eval_logs(tmp_path / "1x4"), _eval_logs(tmp_path / "2x2")
    assert one["eval_num_samples"] == two["eval_num_samples"] == 7
    assert (one["eval_wer"], one["eval_cer"]) == (two["eval_wer"], two["eval_cer"])
    assert one["eval_loss"] == pytest.approx(two["eval_loss"], rel=1e-4)
    # guard sets too: the base model's before training, the trained model's at evaluation
    for key in ("eval_guard_general_wer", "eval_guard_general_change"):
        assert one[key] == two[key]
    guards = [
        json.loads((tmp_path / o / "eval_results.json").read_text())["guards"]
        for o in ("1x4", "2x2")
    ]
    assert guards[0] == guards[1]
