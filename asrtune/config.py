"""Training configuration: asrtune's dataclasses, its training arguments (:class:`TrainConfig`,
a subclass of transformers' Seq2SeqTrainingArguments) and the ``asrtune train`` parser.

Sources, later wins: the field defaults (:class:`TrainConfig` states where asrtune's differ
from transformers'), a YAML file (``--config``), command-line flags, and for the Python API
keyword arguments. Unknown keys are an error everywhere. Every flag's help is its field's
``metadata["help"]``; defaults that depend on the model, the data or the machine are None in
the fields, resolved when the job is built (:func:`resolve_training_values`) and described
in ``--help`` by :func:`resolved_defaults`, built when help is printed.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from transformers import HfArgumentParser, Seq2SeqTrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from asrtune.data.sources import HubOptions, SourceSpec, parse_source
from asrtune.errors import AsrtuneError
from asrtune.help_format import DefaultsHelpFormatter
from asrtune.models import FAMILIES, PRECISIONS, detect_family, family_spec
from asrtune.processes import launched_world_size

log = logging.getLogger("asrtune")


@dataclass
class ModelConfig:
    model: str | None = field(
        default=None, metadata={"help": "Hub id (openai/whisper-small) or local model folder."}
    )
    language: str | None = field(
        default=None,
        metadata={"help": "Language for rows without a 'language' column (e.g. en, fr)."},
    )
    task: str = field(
        default="transcribe", metadata={"help": "transcribe or translate (to English)."}
    )
    freeze_encoder: bool = field(
        default=False,
        metadata={
            "help": "Freeze the audio encoder (flag alias: --freeze_audio_tower); what sits "
            "on it trains (each family's: 'asrtune families').",
            "aliases": ["--freeze_audio_tower", "--freeze-audio-tower"],
        },
    )
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters, not all weights."})
    lora_r: int = field(default=32, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names (or one regex) LoRA adapts; default: the family's "
            "attention and MLP projections (each family's: 'asrtune families')."
        },
    )
    merge: bool = field(
        default=False,
        metadata={"help": "With --lora: also write OUT/merged, a standalone merged model."},
    )
    allow_pickle: bool = field(
        default=False,
        metadata={
            "help": "Allow loading non-safetensors (pickle) weights. Only for trusted models."
        },
    )
    quantization: str | None = field(
        default=None,
        metadata={
            "help": "Load the base model in 4bit or 8bit (bitsandbytes, CUDA GPU only) and "
            "train LoRA on it (QLoRA); needs --lora."
        },
    )
    new_vocabulary: bool = field(
        default=False,
        metadata={
            "help": "Build a character vocabulary from the training transcripts (Unicode NFC, "
            "lowercased and without punctuation unless --vocabulary_keep_case / "
            "--vocabulary_keep_punctuation; a word delimiter for spaces, [UNK], [PAD] as the "
            "CTC blank) and give the model a new CTC head for it (wav2vec2, wav2vec2_bert, hubert, "
            "wavlm, data2vec_audio). Eval characters it lacks stop training (listed) unless "
            "--allow_unknown_tokens."
        },
    )
    vocabulary_keep_case: bool = field(
        default=False,
        metadata={"help": "With --new_vocabulary: keep upper and lower case apart."},
    )
    vocabulary_keep_punctuation: bool = field(
        default=False,
        metadata={"help": "With --new_vocabulary: keep punctuation and symbols as characters."},
    )
    target_lang: str | None = field(
        default=None,
        metadata={
            "help": "Train only MMS-style per-language adapters and the CTC head (a wav2vec2 "
            "checkpoint with adapters, e.g. facebook/mms-1b-all) for this language code; "
            "saved as OUT/adapter.<code>.safetensors, loaded with model.load_adapter(code)."
        },
    )
    eval_precision: str = field(
        default="auto",
        metadata={
            "help": "Precision of evaluation during training: auto (bf16 autocast where the "
            "device computes bf16 natively: CUDA, CPUs with AVX512-BF16/AMX; else fp32), "
            "fp32 or bf16."
        },
    )

    def __post_init__(self) -> None:
        if self.task not in ("transcribe", "translate"):
            raise AsrtuneError(f"--task must be transcribe or translate, not {self.task!r}")
        if self.quantization not in (None, "4bit", "8bit"):
            raise AsrtuneError(f"--quantization must be 4bit or 8bit, not {self.quantization!r}")
        if self.quantization and not self.lora:
            raise AsrtuneError("--quantization freezes a quantized base: add --lora")
        if (self.vocabulary_keep_case or self.vocabulary_keep_punctuation) and not (
            self.new_vocabulary
        ):
            raise AsrtuneError("--vocabulary_keep_* shape a new vocabulary: add --new_vocabulary")
        if self.target_lang and (self.lora or self.freeze_encoder):
            raise AsrtuneError("--target_lang trains the language adapters alone: no --lora")
        if self.new_vocabulary and self.lora:
            raise AsrtuneError(
                "--new_vocabulary makes a new CTC head, which a LoRA adapter cannot carry onto "
                "its base: train all weights (the default) or only the head (--freeze_encoder)"
            )
        if self.eval_precision not in PRECISIONS:
            raise AsrtuneError(
                f"--eval_precision must be one of {', '.join(PRECISIONS)}, "
                f"not {self.eval_precision!r}"
            )


SOURCE_HELP = (
    "a manifest (.jsonl/.csv/.tsv), an audio folder, hf:NAME[:CONFIG][@SPLIT] (Hub or "
    "local dataset) or granary:LANG_CORPUS[@SPLIT]"
)


@dataclass
class DataConfig:
    train_manifest: str | None = field(
        default=None, metadata={"help": f"Training rows: {SOURCE_HELP}."}
    )
    eval_manifest: str | None = field(
        default=None,
        metadata={"help": f"Rows evaluated by generation (WER) after each epoch: {SOURCE_HELP}."},
    )
    dataset: str | None = field(
        default=None, metadata={"help": "Hub dataset to train on (same as hf:NAME)."}
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Config (subset) of --dataset, e.g. a language."}
    )
    split: str = field(default="train", metadata={"help": "Split of --dataset / --granary."})
    eval_split: str | None = field(
        default=None, metadata={"help": "Split of --dataset / --granary to evaluate on."}
    )
    audio_column: str | None = field(
        default=None, metadata={"help": "Audio column of a Hub dataset (default: detected)."}
    )
    text_column: str | None = field(
        default=None, metadata={"help": "Text column of a Hub dataset (default: detected)."}
    )
    granary: str | None = field(
        default=None,
        metadata={
            "help": "NVIDIA Granary config LANG_CORPUS, e.g. de_voxpopuli (manifests "
            "only: needs --granary_audio_root)."
        },
    )
    granary_audio_root: str | None = field(
        default=None, metadata={"help": "Folder holding the audio Granary's manifests name."}
    )
    mix: list[str] | None = field(
        default=None,
        metadata={
            "help": "Extra training sources with weights, SOURCE=WEIGHT (e.g. "
            "hf:corpus=0.3); the main source takes the rest of 1, or weight 1."
        },
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream Hub/Granary/manifest rows instead of reading them first "
            "(for corpora larger than the disk; needs --max_steps)."
        },
    )
    shuffle_buffer: int = field(
        default=1000, metadata={"help": "With --streaming: rows in the shuffle buffer."}
    )
    guard: list[str] | None = field(
        default=None,
        metadata={
            "help": "Guard set NAME=SOURCE (repeatable): general speech the model must not "
            "forget (other voices, other topics). Evaluated on the base model before "
            "training and at every evaluation; reported as the change from the base model.",
            # --guard a=x --guard b=y, as well as --guard a=x b=y
            "action": "extend",
        },
    )
    max_guard_regression: float | None = field(
        default=None,
        metadata={
            "help": "Keep the best checkpoint among those whose headline rate on every guard "
            "set is at most this much worse than the base model's (absolute: 0.02 = 2 "
            "points); warns loudly when no checkpoint is."
        },
    )
    terms: str | None = field(
        default=None,
        metadata={
            "help": "Term file (one term per line, alternative spellings after a tab): each "
            "evaluation logs eval_term_recall and eval_term_false_alarms, and "
            "--metric_for_best_model term_recall keeps the checkpoint that recognizes most."
        },
    )
    prompt_share: float = field(
        default=0.0,
        metadata={
            "help": "With --terms: share of training windows whose decoder first reads a "
            "prompt of terms (those the window holds plus as many distractors, the prompt "
            "--hotwords gives at inference, masked from the loss), so the model learns to "
            "use hotwords instead of copying them. Families with prompt training (Whisper)."
        },
    )
    term_oversample: int = field(
        default=0,
        metadata={
            "help": "With --terms: a term held by fewer than N training rows is rare; its rows "
            "are repeated until it is held by about N (logged, and written to "
            "training_config.json). 0: off."
        },
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N eval rows only."}
    )
    eval_subset: int | None = field(
        default=None,
        metadata={
            "help": "Score N eval rows at each evaluation during training (a fixed sample "
            "spread over the set, non-speech probes in proportion) and the whole set once at "
            "the end: faster epochs on a CPU; the best checkpoint is chosen on the sample. "
            "None: the whole set every time."
        },
    )
    pack: bool = field(
        default=True,
        metadata={"help": "Join several short utterances into each 30-s window (faster)."},
    )
    timestamp_share: float | None = field(
        default=None,
        metadata={
            "help": "Share of training windows whose labels mark each utterance's start and "
            "end with timestamp tokens; the rest are trained without timestamps, so both "
            "decoding modes (short clips, long files) stay trained. 1 marks every window."
        },
    )
    nonspeech_share: float | None = field(
        default=None,
        metadata={
            "help": "Extra training windows of non-speech audio (silence, noise at several "
            "levels, mains hum; --noise_dir's files) with an empty transcript, as a share of "
            "the speech windows: the model learns to say nothing on them."
        },
    )
    single_share: float | None = field(
        default=None,
        metadata={
            "help": "Extra windows holding one short utterance alone (taken out of a packed "
            "window), as a share of the windows: short inputs stay in distribution."
        },
    )
    natural_gaps: bool | None = field(
        default=None,
        metadata={
            "help": "Join packed utterances with gaps of 0.1-1 s and a lead-in of up to "
            "0.5 s, filled with low noise, instead of 0.4 s of digital zeros."
        },
    )
    noise_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of noise recordings (no speech); crops of them make half of the "
            "non-speech windows."
        },
    )
    max_batch_seconds: float | None = field(
        default=None,
        metadata={
            "help": "With --no_pack: batches sized by padded audio seconds (similar "
            "lengths together) instead of a fixed count; --per_device_train_batch_size "
            "then caps the items per batch."
        },
    )
    drop_invalid: bool = field(
        default=False,
        metadata={
            "help": "Train on the valid rows when some are broken (listed in "
            "OUT/dropped.jsonl) instead of stopping."
        },
    )
    allow_unknown_tokens: bool = field(
        default=False,
        metadata={
            "help": "Train on rows whose text has characters the model's tokenizer has no "
            "token for (another script, a casing its vocabulary lacks): their labels hold "
            "the unknown token, and the model learns to say it. By default such rows are "
            "left out (listed in OUT/skipped.jsonl)."
        },
    )

    def __post_init__(self) -> None:
        if self.max_batch_seconds is not None and self.pack:
            raise AsrtuneError("--max_batch_seconds sizes unpacked batches: add --no_pack")
        for name in ("timestamp_share", "nonspeech_share", "single_share", "prompt_share"):
            share = getattr(self, name)
            if share is not None and not 0 <= share <= 1:
                raise AsrtuneError(f"--{name} is a share of the windows, 0 to 1: not {share}")
        if self.noise_dir is not None and not Path(self.noise_dir).expanduser().is_dir():
            raise AsrtuneError(f"--noise_dir {self.noise_dir} is not a folder")
        from asrtune.guards import parse_guards

        guards = parse_guards(self.guard)
        if self.max_guard_regression is not None and not guards:
            raise AsrtuneError("--max_guard_regression needs guard sets: add --guard NAME=SOURCE")
        if guards and eval_source(self) is None:
            raise AsrtuneError(
                "--guard is evaluated with the eval set: add --eval_manifest (or --eval_split)"
            )


def hub_options(data: DataConfig, streaming: bool | None = None) -> HubOptions:
    return HubOptions(
        audio_column=data.audio_column,
        text_column=data.text_column,
        streaming=data.streaming if streaming is None else streaming,
        granary_audio_root=data.granary_audio_root,
    )


def training_sources(data: DataConfig) -> list[SourceSpec]:
    """The training sources named by the config, with their mixing weights."""
    main: list[SourceSpec] = []
    if data.train_manifest:
        main.append(parse_source(data.train_manifest))
    if data.dataset:
        main.append(SourceSpec("hub", data.dataset, data.dataset_config, data.split))
    if data.granary:
        main.append(SourceSpec("granary", data.granary, None, data.split))
    extra = [parse_source(text) for text in data.mix or []]
    share = sum(s.weight for s in extra)
    if main and extra and share < 1:
        main = [replace(s, weight=(1 - share) / len(main)) for s in main]
    return main + extra


def eval_source(data: DataConfig) -> SourceSpec | None:
    if data.eval_manifest:
        return parse_source(data.eval_manifest)
    if data.eval_split and data.dataset:
        return SourceSpec("hub", data.dataset, data.dataset_config, data.eval_split)
    if data.eval_split and data.granary:
        return SourceSpec("granary", data.granary, None, data.eval_split)
    return None


@dataclass
class RunConfig:
    config: str | None = field(
        default=None, metadata={"help": "YAML file of any of these options; flags override it."}
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "Continue from the newest complete checkpoint in --output_dir "
            "(incomplete ones are named and passed over)."
        },
    )


def cpu_processes_launched() -> bool:
    """Whether a launcher (torchrun, accelerate launch) started several processes on a
    machine without CUDA.

    There accelerate sets up data parallelism (MULTI_CPU, gloo) only when asked for the
    CPU: otherwise every process trains on its own, on all the data or, with
    ``--ddp_backend gloo``, on its share but with gradients never averaged.
    """
    return launched_world_size() > 1 and not torch.cuda.is_available()


def bf16_available() -> bool:
    """Whether this machine trains in bf16 mixed precision: a CUDA GPU that supports it.
    Asked when a job is built, not at import (CUDA may be set up later)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def default_bf16(fp16: bool, use_cpu: bool) -> bool:
    """bf16 unless fp16 was asked for, or the CPU, or the machine cannot (bf16_available)."""
    return bf16_available() and not fp16 and not use_cpu


#: The learning rate each method trains with unless told otherwise; a family's
#: ``LORA_LEARNING_RATE`` takes LoRA's place for its models (benchmarks/lora_lr.py measured
#: Whisper's: see docs/benchmarks.md).
LEARNING_RATES: dict[str, float] = {"full": 2e-5, "lora": 1e-3}


def default_learning_rate(model: ModelConfig) -> float:
    """The learning rate for ``model``'s method and family (a family's own full
    fine-tuning rate, ``Family.learning_rate``, or its LoRA one)."""
    method = "lora" if model.lora else "full"
    try:
        family = family_spec(detect_family(model.model or ""))
    except AsrtuneError:  # not a model asrtune knows: loading it will say so
        return LEARNING_RATES[method]
    if model.lora:
        return family.lora_learning_rate
    return family.learning_rate or LEARNING_RATES["full"]


#: Metrics a best checkpoint can be chosen by; evaluation logs each as ``eval_<name>``.
BEST_MODEL_METRICS = ("wer", "cer", "wer_unnormalized", "loss", "term_recall")
#: Of those, the ones where higher is better (needs --terms).
HIGHER_IS_BETTER = frozenset({"term_recall"})


def _optional_flag(help_text: str) -> dict[str, Any]:
    """Field metadata of a ``bool | None`` option that, like a plain bool, may be given bare
    (``--bf16``) or with a value (``--bf16 false``): HfArgumentParser passes the metadata on
    to ``add_argument``."""
    return {"help": help_text, "nargs": "?", "const": True}


@dataclass
class TrainConfig(Seq2SeqTrainingArguments):
    """transformers' Seq2SeqTrainingArguments with asrtune's defaults where they differ on
    purpose (the fields declared here), as trl's ``SFTConfig`` is.

    A training item is a packed 30-s window holding ~5-7 short utterances, so batch 4 is
    ~25 utterances a step. Fields left None depend on the model, the data or the machine:
    :func:`build_train_job` resolves them (:func:`resolve_training_values`) before the
    arguments are built, and ``--help`` describes them (:func:`resolved_defaults`). Built
    directly (``TrainConfig(output_dir=...)``), they fall back to what holds without a model
    or an eval set: full fine-tuning's learning rate, no evaluation.
    """

    per_device_train_batch_size: int = field(
        default=4,
        metadata={"help": "Training items (packed 30-s windows when packing) per device and step."},
    )
    per_device_eval_batch_size: int = field(
        default=16, metadata={"help": "Utterances per device in one evaluation batch."}
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": "The initial learning rate for the optimizer."}
    )
    num_train_epochs: float = field(
        default=3, metadata={"help": "Total number of training epochs to perform."}
    )
    warmup_steps: float = field(
        default=0.1,
        metadata={
            "help": "Number of steps for a linear warmup from 0 to `learning_rate`. Can be an "
            "integer (exact steps) or a float in [0, 1) (ratio of total steps)."
        },
    )
    logging_steps: float = field(
        default=10,
        metadata={
            "help": "Log every X updates steps. Should be an integer or a float in range "
            "`[0,1)`. If smaller than 1, will be interpreted as ratio of total training steps."
        },
    )
    eval_strategy: IntervalStrategy | str | None = field(
        default=None,
        metadata={
            "help": "When to run evaluation. Options: 'no', 'steps', 'epoch'.",
            "choices": [strategy.value for strategy in IntervalStrategy],
        },
    )
    eval_steps: float | None = field(
        default=None,
        metadata={"help": "Update steps between evaluations with --eval_strategy steps."},
    )
    save_strategy: SaveStrategy | str = field(
        default="epoch",
        metadata={
            "help": "The checkpoint save strategy to adopt during training. Options: 'no', "
            "'epoch', 'steps', 'best'."
        },
    )
    save_total_limit: int | None = field(
        default=2,
        metadata={
            "help": "Maximum number of checkpoints to keep. Deletes older checkpoints in "
            "`output_dir`. The best checkpoint is always retained when "
            "`load_best_model_at_end=True`."
        },
    )
    bf16: bool | None = field(
        default=None,
        metadata=_optional_flag("Enable bfloat16 (BF16) mixed precision training."),
    )
    load_best_model_at_end: bool | None = field(
        default=None,
        metadata=_optional_flag(
            "Load the best checkpoint at the end of training. Requires `eval_strategy` to be set."
        ),
    )
    # transformers' own annotations, in its order: HfArgumentParser picks the flag's type by
    # the position in the union
    report_to: None | str | list[str] = field(  # noqa: RUF036
        default="trackio",
        metadata={
            "help": "The list of integrations to report the results and logs to: trackio "
            "logs offline to a local database in OUT/trackio, or in TRACKIO_DIR when set "
            "(`TRACKIO_DIR=OUT/trackio trackio show --project asrtune`); 'all' for "
            "all installed integrations, 'none' for no integrations."
        },
    )
    project: str = field(
        default="asrtune",
        metadata={"help": "The name of the project to use for logging (trackio)."},
    )
    trackio_static_space_id: str | None | Literal[False] = field(  # noqa: RUF036
        default=False,
        metadata={
            "help": "Static read-only Trackio Space over the Bucket. False: no static sync on "
            "Hub push and no freeze after training (asrtune logs offline)."
        },
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={
            "help": "Whether or not to automatically remove the columns unused by the model "
            "forward method (asrtune's collators build exactly the model's inputs)."
        },
    )
    label_names: list[str] | None = field(
        default_factory=lambda: ["labels"],
        metadata={
            "help": "The list of keys in your dictionary of inputs that correspond to the labels."
        },
    )

    def __post_init__(self) -> None:
        self._fill_without_job()
        if self.metric_for_best_model is not None:
            self.metric_for_best_model = best_model_metric(self.metric_for_best_model)
        if not self.run_name and self.output_dir:
            self.run_name = Path(self.output_dir).name
        if self.dataloader_persistent_workers:
            log.warning(
                "--dataloader_persistent_workers ignored: workers start afresh each epoch to "
                "build that epoch's windows (repacked)"
            )
            self.dataloader_persistent_workers = False
        if cpu_processes_launched():
            if any(os.environ.get(f"ACCELERATE_USE_{x}") == "true" for x in ("FSDP", "DEEPSPEED")):
                log.warning("FSDP and DeepSpeed need CUDA GPUs: training with DDP on the CPU")
            self.use_cpu = True
            self.ddp_backend = self.ddp_backend or "gloo"
        super().__post_init__()

    def _fill_without_job(self) -> None:
        """The defaults left None, where no job resolved them (no model, no eval set)."""
        if self.learning_rate is None:
            self.learning_rate = LEARNING_RATES["full"]
        if self.bf16 is None:
            self.bf16 = default_bf16(self.fp16, self.use_cpu)
        if self.eval_strategy is None:
            self.eval_strategy = "no"
        if self.load_best_model_at_end is None:
            self.load_best_model_at_end = False


def best_model_metric(name: str) -> str:
    """``name`` (``wer`` or ``eval_wer``) as one of :data:`BEST_MODEL_METRICS`."""
    metric = name.removeprefix("eval_")
    if metric not in BEST_MODEL_METRICS:
        raise AsrtuneError(
            f"--metric_for_best_model must be one of {', '.join(BEST_MODEL_METRICS)}, "
            f"not {metric!r}"
        )
    return metric


def asrtune_training_defaults() -> dict[str, Any]:
    """The defaults :class:`TrainConfig` sets where transformers' differ (None: resolved
    when the job is built, see :func:`resolved_defaults`)."""
    own = inspect.get_annotations(TrainConfig)
    return {
        f.name: f.default_factory() if f.default is MISSING else f.default
        for f in fields(TrainConfig)
        if f.name in own
    }


#: :func:`asrtune_training_defaults`, for the UI's form and the CLI reference.
TRAINING_DEFAULTS: dict[str, Any] = asrtune_training_defaults()

#: Options whose None default is resolved per job; their ``--help`` says how.
RESOLVED_OPTIONS = (
    "learning_rate",
    "bf16",
    "eval_strategy",
    "eval_steps",
    "load_best_model_at_end",
    "timestamp_share",
    "nonspeech_share",
    "single_share",
    "natural_gaps",
    "metric_for_best_model",
)


def resolved_defaults() -> dict[str, str]:
    """How each of :data:`RESOLVED_OPTIONS` is resolved when a job is built, in words.

    Built when asked (``--help``, the CLI reference, the UI), not at import: the family
    figures come from the adapters (their LoRA learning rate, their training mix), and
    importing this module imports none of them.
    """
    families = FAMILIES.values()
    mix_texts = {
        name: "the model family's: "
        + ", ".join(f"{family.name} {family.training_mix.get(name, off)}" for family in families)
        for name, off in (
            ("timestamp_share", 0),
            ("nonspeech_share", 0),
            ("single_share", 0),
            ("natural_gaps", False),
        )
    }
    return {
        "learning_rate": f"{LEARNING_RATES['full']:g} (full fine-tuning; "
        + ", ".join(f"{f.name} {f.learning_rate:g}" for f in families if f.learning_rate)
        + "); with --lora "
        + ", ".join(f"{family.name} {family.lora_learning_rate:g}" for family in families),
        "bf16": "True on a CUDA GPU with bf16 support, else False",
        "eval_strategy": "with an eval set: as --save_strategy when that is epoch or steps, "
        "else epoch; without one: no",
        "eval_steps": "--save_steps, so evaluation happens when a checkpoint is saved",
        "load_best_model_at_end": "True with an eval set and checkpoints saved when evaluating "
        "(or --save_strategy best), else False",
        **mix_texts,
        "metric_for_best_model": "cer when every eval row's language is written without "
        "spaces (zh, ja, th, lo, my, km, bo, yue), else wer; or one of "
        + ", ".join(BEST_MODEL_METRICS),
    }


@dataclass
class TrainJob:
    """Everything ``asrtune train`` needs, validated."""

    model: ModelConfig
    data: DataConfig
    run: RunConfig
    training: TrainConfig
    #: True when no --metric_for_best_model was given: training picks wer or cer from the
    #: eval rows' languages (metrics.headline_metric) once it has read them.
    best_metric_by_language: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; token fields are masked by TrainingArguments.to_dict()."""
        return {
            "model": asdict(self.model),
            "data": asdict(self.data),
            "run": asdict(self.run),
            "training": self.training.to_dict(),
        }


class _HelpFormatter(DefaultsHelpFormatter):
    """Shows how asrtune resolves a default (:func:`resolved_defaults`, built when the help
    is printed), not "(default: None)"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.dest in RESOLVED_OPTIONS and action.default is None:
            return f"{action.help} (default: {resolved_defaults()[action.dest]})"
        return super()._get_help_string(action)


#: The dataclasses ``asrtune train`` is configured with, in the order of its ``--help``.
TRAIN_CONFIG_TYPES = (ModelConfig, DataConfig, RunConfig, TrainConfig)


def train_parser() -> HfArgumentParser:
    """``asrtune train``'s parser: one flag per field of :data:`TRAIN_CONFIG_TYPES`, its help
    and parser options from the field's metadata."""
    return HfArgumentParser(
        TRAIN_CONFIG_TYPES,
        prog="asrtune train",
        description="Fine-tune a speech recognition model (full or LoRA) on a manifest.",
        formatter_class=_HelpFormatter,
    )


def option_names() -> set[str]:
    """Every option ``asrtune train`` takes (YAML keys and API keywords alike)."""
    return {f.name for cls in TRAIN_CONFIG_TYPES for f in fields(cls) if f.init}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Options from a YAML mapping; keys may use - or _; unknown keys raise."""
    path = Path(path)
    if not path.is_file():
        raise AsrtuneError(f"config file not found: {path}")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise AsrtuneError(f"{path}: expected a mapping of option: value")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    # YAML 1.1 reads a bare `no` as False: `eval_strategy: no` means the strategy "no"
    values = {k: "no" if k.endswith("_strategy") and v is False else v for k, v in values.items()}
    unknown = sorted(set(values) - option_names())
    if unknown:
        raise AsrtuneError(f"{path}: unknown option(s): {', '.join(unknown)}")
    return values


def parse_train_args(argv: list[str]) -> TrainJob:
    """YAML (``--config``) first, flags on top; argparse exits 2 on a bad flag."""
    parser = train_parser()
    first = parser.parse_args(argv)
    if first.config:
        parser.set_defaults(**load_yaml(first.config))
    return build_train_job(vars(parser.parse_args(argv)))


def train_job_from_kwargs(**kwargs: Any) -> TrainJob:
    """The Python API's way in: the same defaults and checks as the CLI."""
    parser = train_parser()
    if kwargs.get("config"):
        parser.set_defaults(**load_yaml(kwargs["config"]))
    unknown = sorted(set(kwargs) - option_names())
    if unknown:
        raise AsrtuneError(f"unknown option(s): {', '.join(unknown)}")
    return build_train_job({**vars(parser.parse_args([])), **kwargs})


def _pick(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls) if f.init}
    return {k: v for k, v in values.items() if k in names}


def build_train_job(values: dict[str, Any]) -> TrainJob:
    """Split flat option values into the config dataclasses (each checks its own fields)
    and resolve the training arguments that depend on them."""
    model, data, run = (
        ModelConfig(**_pick(ModelConfig, values)),
        DataConfig(**_pick(DataConfig, values)),
        RunConfig(**_pick(RunConfig, values)),
    )
    if not model.model:
        raise AsrtuneError("--model is required (a Hub id or a local model folder)")
    if not (data.train_manifest or data.dataset or data.granary or data.mix):
        raise AsrtuneError("no training data: pass --train_manifest, --dataset, --granary or --mix")
    if data.streaming and values.get("max_steps", -1) <= 0:
        raise AsrtuneError("--streaming needs --max_steps (a stream has no known length)")
    if not values.get("output_dir"):
        raise AsrtuneError("--output_dir is required")
    training_values = resolve_training_values(model, data, _pick(TrainConfig, values))
    try:
        training = TrainConfig(**training_values)
    except (ValueError, TypeError) as exc:
        raise AsrtuneError(f"invalid training arguments: {exc}") from exc
    chosen = values.get("metric_for_best_model")
    return TrainJob(model, data, run, training, best_metric_by_language=chosen is None)


def resolve_training_values(
    model: ModelConfig, data: DataConfig, values: dict[str, Any]
) -> dict[str, Any]:
    """:class:`TrainConfig`'s None defaults (see :func:`resolved_defaults`) for this method,
    data and machine; the rest of ``values`` as given."""
    values = dict(values)
    if values.get("learning_rate") is None:
        values["learning_rate"] = default_learning_rate(model)
    if values.get("bf16") is None:
        values["bf16"] = default_bf16(values.get("fp16", False), values.get("use_cpu", False))
    values.update(evaluation_values(eval_source(data) is not None, values))
    return values


def evaluation_values(has_eval_set: bool, values: dict[str, Any]) -> dict[str, Any]:
    """When to evaluate during training and how to pick the best checkpoint.

    With an eval set: evaluate when saving (``eval_steps`` = ``save_steps`` unless given,
    not transformers' fallback to ``logging_steps``), keep the best checkpoint by
    ``metric_for_best_model`` (lower is better, except :data:`HIGHER_IS_BETTER`; ``wer``
    until the eval rows' languages are known, see :attr:`TrainJob.best_metric_by_language`).
    """
    if not has_eval_set:
        return {"eval_strategy": "no", "load_best_model_at_end": False}
    save = str(values.get("save_strategy") or "epoch")
    strategy = str(values.get("eval_strategy") or (save if save in ("epoch", "steps") else "epoch"))
    resolved: dict[str, Any] = {"eval_strategy": strategy, "greater_is_better": False}
    if strategy == "steps" and values.get("eval_steps") is None:
        resolved["eval_steps"] = values.get("save_steps") or 500
    load_best = values.get("load_best_model_at_end")
    if load_best is None:  # needs checkpoints saved when evaluating (or --save_strategy best)
        load_best = strategy != "no" and save in (strategy, "best")
    resolved["load_best_model_at_end"] = load_best
    metric = best_model_metric(values.get("metric_for_best_model") or "wer")
    resolved["metric_for_best_model"] = metric
    resolved["greater_is_better"] = metric in HIGHER_IS_BETTER
    return resolved
