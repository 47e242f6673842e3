"""Config: YAML first, flags on top, both flag spellings, unknown keys fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asrtune.config import LEARNING_RATES, parse_train_args, train_job_from_kwargs
from asrtune.errors import AsrtuneError

BASE = ["--model", "m", "--train-manifest", "t.jsonl", "--output_dir", "out"]


def test_both_spellings_and_asrtune_defaults() -> None:
    job = parse_train_args([*BASE, "--learning-rate", "3e-5", "--per_device_train_batch_size", "2"])
    assert job.training.learning_rate == 3e-5
    assert job.training.per_device_train_batch_size == 2
    assert job.training.report_to == ["trackio"]  # asrtune's default, offline
    assert job.data.pack is True and job.model.lora is False
    assert job.training.eval_strategy == "no"  # no eval manifest


def test_eval_manifest_turns_on_best_by_wer() -> None:
    job = parse_train_args([*BASE, "--eval-manifest", "e.jsonl"])
    training = job.training
    assert training.eval_strategy == "epoch" and training.load_best_model_at_end
    assert training.metric_for_best_model == "wer" and training.greater_is_better is False


def test_eval_runs_each_epoch_even_without_checkpoints() -> None:
    job = parse_train_args(
        [
            *BASE,
            "--eval-manifest",
            "e.jsonl",
            "--save_strategy",
            "no",
            "--load_best_model_at_end",
            "false",
        ]
    )
    assert job.training.eval_strategy == "epoch"


def test_an_eval_split_of_a_hub_dataset_turns_on_evaluation() -> None:
    job = parse_train_args(
        [
            "--model",
            "m",
            "--dataset",
            "me/speech",
            "--eval_split",
            "validation",
            "--output_dir",
            "out",
        ]
    )
    assert job.training.eval_strategy == "epoch" and job.training.load_best_model_at_end


def test_yaml_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model: from-yaml\nlearning-rate: 0.001\nlora: true\nlora_r: 4\n")
    job = parse_train_args(
        ["--config", str(config), "--train_manifest", "t", "--output_dir", "o", "--lora_r", "8"]
    )
    assert job.model.model == "from-yaml" and job.model.lora
    assert job.training.learning_rate == 0.001
    assert job.model.lora_r == 8  # the flag wins


def test_unknown_yaml_key_fails(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model: m\nlearning_rat: 0.1\n")
    with pytest.raises(AsrtuneError, match="learning_rat"):
        parse_train_args(["--config", str(config)])


def test_missing_required_and_unknown_kwargs() -> None:
    with pytest.raises(AsrtuneError, match="--model"):
        parse_train_args(["--train_manifest", "t", "--output_dir", "o"])
    with pytest.raises(AsrtuneError, match="unknown option"):
        train_job_from_kwargs(model="m", train_manifest="t", output_dir="o", nonsense=1)
    with pytest.raises(AsrtuneError, match="task"):
        train_job_from_kwargs(model="m", train_manifest="t", output_dir="o", task="translit")


def test_shipped_configs_parse() -> None:
    root = Path(__file__).parents[1].joinpath("configs")
    configs = sorted(set(root.rglob("*.yaml")) - set(root.glob("accelerate/*.yaml")))
    assert configs, "configs/ ships at least one file"
    for config in configs:
        first_line = config.read_text().splitlines()[0]
        assert first_line.startswith("# asrtune train --config"), config
        job = parse_train_args(
            ["--config", str(config), "--train_manifest", "t", "--output_dir", "o"]
        )
        assert job.model.model


def test_shipped_accelerate_configs_load_and_name_their_command() -> None:
    """configs/accelerate/*.yaml load with accelerate's own loader (unknown keys fail) and
    begin with the command that runs them."""
    from accelerate.commands.config.config_args import load_config_from_file

    folder = Path(__file__).parents[1].joinpath("configs", "accelerate")
    expected = {
        "ddp.yaml": ("MULTI_GPU", None),
        "fsdp_whisper.yaml": ("FSDP", "WhisperEncoderLayer,WhisperDecoderLayer"),
        "fsdp_voxtral.yaml": ("FSDP", "LlamaDecoderLayer,VoxtralEncoderLayer"),
        "deepspeed_zero2.yaml": ("DEEPSPEED", None),
        "deepspeed_zero3.yaml": ("DEEPSPEED", None),
    }
    assert sorted(p.name for p in folder.glob("*.yaml")) == sorted(expected)
    for name, (kind, layers) in expected.items():
        path = folder / name
        first_line = path.read_text().splitlines()[0]
        assert first_line.startswith(f"# accelerate launch --config_file configs/accelerate/{name}")
        assert "-m asrtune.cli train" in first_line
        config = load_config_from_file(str(path))
        assert config.distributed_type.value == kind
        if layers:
            assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == layers
            assert config.fsdp_config["fsdp_version"] == 2


def test_a_launch_without_cuda_is_recognized(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun without CUDA the job asks accelerate for the CPU (MULTI_CPU, gloo):
    otherwise every process trains alone (tests/test_distributed.py runs it for real)."""
    from asrtune.config import cpu_processes_launched

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cpu_processes_launched()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not cpu_processes_launched()  # accelerate picks nccl itself
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not cpu_processes_launched()


def test_lora_gets_its_own_learning_rate_unless_told() -> None:
    assert parse_train_args(BASE).training.learning_rate == LEARNING_RATES["full"]
    lora = parse_train_args([*BASE, "--lora"]).training.learning_rate
    assert lora == LEARNING_RATES["lora"] and lora > LEARNING_RATES["full"]
    api = train_job_from_kwargs(model="m", train_manifest="t", output_dir="o", lora=True)
    assert api.training.learning_rate == LEARNING_RATES["lora"]
    assert (
        parse_train_args([*BASE, "--lora", "--learning_rate", "3e-5"]).training.learning_rate
        == 3e-5
    )


def test_a_family_sets_its_lora_learning_rate() -> None:
    from asrtune.models import voxtral, whisper

    def rate(model: str) -> float:
        argv = ["--model", model, "--train-manifest", "t", "--output_dir", "o", "--lora"]
        return parse_train_args(argv).training.learning_rate

    assert rate("openai/whisper-small") == whisper.LORA_LEARNING_RATE == 1e-3
    assert rate("mistralai/Voxtral-Mini-3B-2507") == voxtral.LORA_LEARNING_RATE == 1e-4


def test_steps_checkpoints_evaluate_when_saving() -> None:
    """Not every logging_steps (10): generation over the eval set is the slow part."""
    job = parse_train_args(
        [*BASE, "--eval-manifest", "e.jsonl", "--save_strategy", "steps", "--save_steps", "50"]
    )
    assert job.training.eval_strategy == "steps" and job.training.eval_steps == 50
    job = parse_train_args(
        [*BASE, "--eval-manifest", "e", "--save_strategy", "steps", "--eval_steps", "25"]
    )
    assert job.training.eval_steps == 25  # told otherwise


def test_best_model_metric_is_checked_and_chosen_by_language() -> None:
    with pytest.raises(AsrtuneError, match="metric_for_best_model must be one of"):
        parse_train_args([*BASE, "--eval-manifest", "e", "--metric_for_best_model", "bleu"])
    job = parse_train_args([*BASE, "--eval-manifest", "e", "--metric_for_best_model", "eval_loss"])
    assert job.training.metric_for_best_model == "loss" and not job.best_metric_by_language
    assert parse_train_args([*BASE, "--eval-manifest", "e"]).best_metric_by_language


def test_bf16_is_decided_when_the_job_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose CUDA appears after import (or a job built on another device) gets
    the precision of the machine it is built on."""
    assert parse_train_args(BASE).training.bf16 is False  # this CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    from asrtune import config

    assert config.bf16_available()
    values = config.resolve_training_values(
        config.ModelConfig(model="m"), config.DataConfig(train_manifest="t"), {}
    )
    assert values["bf16"] is True
    values = config.resolve_training_values(
        config.ModelConfig(model="m"), config.DataConfig(train_manifest="t"), {"fp16": True}
    )
    assert values["bf16"] is False


def test_config_types_check_their_own_fields() -> None:
    from asrtune.config import DataConfig, ModelConfig

    with pytest.raises(AsrtuneError, match="--task"):
        ModelConfig(model="m", task="summarize")
    with pytest.raises(AsrtuneError, match="add --lora"):
        ModelConfig(model="m", quantization="4bit")
    with pytest.raises(AsrtuneError, match="--no_pack"):
        DataConfig(train_manifest="t", max_batch_seconds=60)


@pytest.mark.parametrize(
    ("flags", "strategy", "load_best"),
    [
        (["--eval_strategy", "steps"], "steps", False),  # checkpoints by epoch: no best
        (["--save_strategy", "steps", "--eval_strategy", "epoch"], "epoch", False),
        (["--save_strategy", "best"], "epoch", True),
        (["--save_strategy", "no"], "epoch", False),
        (["--eval_strategy", "no"], "no", False),  # evaluate at the end only
    ],
)
def test_evaluation_and_checkpoint_strategies_resolve_to_a_valid_pair(
    flags: list[str], strategy: str, load_best: bool
) -> None:
    job = parse_train_args([*BASE, "--eval-manifest", "e", *flags])
    assert job.training.eval_strategy == strategy
    assert job.training.load_best_model_at_end is load_best


def test_yaml_no_is_the_strategy_no(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("eval_strategy: no\nsave_strategy: no\n")
    job = parse_train_args([*BASE, "--eval-manifest", "e", "--config", str(config)])
    assert job.training.eval_strategy == "no" and job.training.save_strategy == "no"


def test_training_arguments_are_a_seq2seq_subclass_with_asrtune_defaults(tmp_path: Path) -> None:
    """TrainConfig is transformers' Seq2SeqTrainingArguments with asrtune's defaults (as
    trl's SFTConfig): built directly, the defaults that need a job fall back to full
    fine-tuning without evaluation; the job's arguments are the same type."""
    from transformers import Seq2SeqTrainingArguments

    from asrtune.config import TrainConfig

    direct = TrainConfig(output_dir=str(tmp_path / "run"))
    assert isinstance(direct, Seq2SeqTrainingArguments)
    assert direct.per_device_train_batch_size == 4 and direct.report_to == ["trackio"]
    assert direct.learning_rate == LEARNING_RATES["full"] and direct.eval_strategy == "no"
    assert direct.run_name == "run" and direct.label_names == ["labels"]
    assert type(parse_train_args(BASE).training) is TrainConfig
    with pytest.raises(AsrtuneError, match="metric_for_best_model must be one of"):
        TrainConfig(output_dir="o", metric_for_best_model="bleu")


def test_every_train_flag_takes_its_help_from_its_field() -> None:
    """--help text is the fields' metadata (no help patched into the parser afterwards)."""
    from dataclasses import fields

    from asrtune.config import TRAIN_CONFIG_TYPES, train_parser

    helps = {f.name: f.metadata.get("help") for c in TRAIN_CONFIG_TYPES for f in fields(c)}
    actions = [a for a in train_parser()._actions if a.dest in helps]
    assert len({a.dest for a in actions}) == len(helps)
    assert all(a.help == helps[a.dest] for a in actions)


def test_guard_flags_add_up() -> None:
    job = parse_train_args(
        [*BASE, "--eval-manifest", "e", "--guard", "a=x.jsonl", "--guard", "b=y.jsonl", "c=z"]
    )
    assert job.data.guard == ["a=x.jsonl", "b=y.jsonl", "c=z"]


def test_importing_the_config_imports_no_family_adapter() -> None:
    """--help's family figures are built when help is printed: importing asrtune.config
    (as the UI, the API and every train run do) loads no adapter module."""
    import subprocess
    import sys

    from asrtune.models import FAMILIES

    adapters = sorted(family.adapter for family in FAMILIES.values())
    code = "import sys, asrtune.config; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not set(adapters) & set(loaded), set(adapters) & set(loaded)
