"""The model-family contract: what every family's adapter provides (:class:`FamilyAdapter`),
what it can do (:class:`Capabilities`), its one registration (:class:`Family`), and how
published code runs it (:class:`FamilyRecipe`, :class:`UsageContext`).

A registration holds everything family-specific outside the adapter module: the UI's sizes,
the make-tiny builder, the publish recipe; LoRA defaults and the training mix are read from
the adapter. Modules are named by path (``"module"`` or ``"module:attribute"``) and imported
on first use, so reading the registry imports neither torch nor transformers. Adding a
family is one adapter module that declares its kind (``asrtune/models/kinds/``: the
shared work of encoder-decoders, audio LLMs, CTC and transducer models) and writes what
differs, and one :func:`register` call in ``asrtune/models/registry.py``;
``tests/test_families.py`` checks every registration against this contract.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from asrtune.errors import AsrtuneError

if TYPE_CHECKING:
    import numpy as np

    from asrtune.data.batching import PackItem, WindowPacker
    from asrtune.data.windows import Example, WindowPlan


class Transcript(str):
    """A decoded text that also says whether decoding stopped at the token cap
    (``capped``): the hypothesis ran on until cut, the sign of a decoding loop."""

    capped: bool

    def __new__(cls, text: str, capped: bool = False) -> Transcript:
        transcript = super().__new__(cls, text)
        transcript.capped = capped
        return transcript


@dataclass(frozen=True)
class Limits:
    """What one training item may hold: seconds of audio and label tokens."""

    max_seconds: float
    max_label_tokens: int


@dataclass
class LoadedModel:
    """A model ready to train or generate, its processor, and where it came from.

    ``base`` is the base model's id/path when ``source`` is a LoRA adapter folder.
    """

    model: Any
    processor: Any
    family: str
    source: str
    base: str | None = None

    @property
    def adapter(self) -> ModuleType:
        """The family's adapter module (see :class:`FamilyAdapter`)."""
        return family_spec(self.family).module()

    @property
    def spec(self) -> Family:
        """The family's registration."""
        return family_spec(self.family)

    @property
    def capabilities(self) -> Capabilities:
        return self.spec.capabilities


#: The kinds of family (``asrtune/models/kinds/<kind>.py`` holds each one's shared work).
KINDS: tuple[str, ...] = ("encoder_decoder", "audio_llm", "ctc", "transducer")

Decoding = Literal["generative", "ctc", "transducer"]
DECODINGS: tuple[str, ...] = ("generative", "ctc", "transducer")


@dataclass(frozen=True)
class Capabilities:
    """What a family can do, declared (never probed with ``hasattr``).

    ``decoding``: ``generative`` (a decoder emits tokens: Whisper, audio LLMs), ``ctc`` or
    ``transducer`` (frame-level outputs, greedy decoding). ``timestamps``: the adapter has
    ``generate_segments`` and trains windows with timestamp tokens. ``translate``: the task
    ``translate`` (to English) works. ``packing``: several utterances share a training
    window. ``quantized_base``: ``load(..., quantization="4bit"|"8bit")`` (QLoRA).
    ``new_vocabulary``: ``--new_vocabulary`` works: the adapter has
    ``use_vocabulary(loaded, vocabulary, folder) -> list[str]`` (a character tokenizer and a
    CTC head made for it, see ``asrtune/models/ssl_ctc.py``), returning the new modules.
    ``language_adapters``: ``--target_lang`` trains only MMS-style per-language adapters
    and the head (``train_language_adapter(loaded, lang)``, ``save_language_adapter(loaded,
    folder, lang)``).
    ``hotwords``: decoding can be biased toward a list of terms (``--hotwords``): the
    adapter has ``generate_boosted``. ``prompt_training``: its ``window_item`` trains
    windows with ``plan.prompt`` (terms as the prompt ``generate_boosted`` gives,
    masked from the loss: ``--prompt_share``).
    """

    decoding: Decoding = "generative"
    timestamps: bool = False
    translate: bool = False
    packing: bool = True
    quantized_base: bool = False
    new_vocabulary: bool = False
    language_adapters: bool = False
    hotwords: bool = False
    prompt_training: bool = False

    def __post_init__(self) -> None:
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}")


@runtime_checkable
class FamilyAdapter(Protocol):
    """The functions and constants of every adapter module (``asrtune/models/<family>.py``).

    ``tests/test_families.py`` checks each registered adapter's functions against these
    signatures (same parameter names, order and defaults). A family with
    ``Capabilities.timestamps`` also has ``generate_segments`` (``generate``'s signature,
    returning a list of :class:`asrtune.transcripts.Segment` per input). A family with
    ``Capabilities.hotwords`` also has ``generate_boosted`` (``generate``'s signature with
    ``hotwords: Sequence[str]`` after ``task``): the same texts, decoded with a bias toward
    the hotwords (an empty list: exactly ``generate``'s).
    """

    KIND: str  # the family's kind (asrtune/models/kinds/: its shared work)
    LORA_TASK_TYPE: str | None  # peft task type of the LoRA wrapper (None: a plain one)
    LORA_LEARNING_RATE: float  # the learning rate LoRA trains with unless told otherwise
    LOSS_SHIFTS_LABELS: bool  # whether logits at position i predict labels[i + 1]
    GPU_INFERENCE_DTYPE: str  # torch dtype name for inference on a GPU
    TRAINING_MIX: dict[str, Any]  # TrainingMix defaults that keep pretrained abilities

    def load(
        self,
        name_or_path: str,
        *,
        dtype: Any = None,
        device: str | None = None,
        allow_pickle: bool = False,
        quantization: str | None = None,
    ) -> LoadedModel:
        """A checkpoint (Hub id or folder) with its processor."""

    def load_processor(self, path: str, fallback: str | None = None) -> Any:
        """The processor of ``path``, else of ``fallback`` (a LoRA adapter's base)."""

    def limits(self, loaded: LoadedModel) -> Limits:
        """Seconds of audio and label tokens one training item may hold."""

    def sole_language(self, loaded: LoadedModel) -> str | None:
        """The one language an English-only model speaks, else None."""

    def encode_labels(
        self,
        loaded: LoadedModel,
        texts: Sequence[str],
        language: str | None,
        task: str,
        spans: Sequence[tuple[float, float]] | None = None,
    ) -> list[int]:
        """Labels of a window holding ``texts``; ``spans`` (seconds) only with timestamps."""

    def window_item(
        self, loaded: LoadedModel, window: Sequence[Example], task: str, plan: WindowPlan = ...
    ) -> dict[str, Any]:
        """One training item from a window laid out by ``plan`` (``data/windows.py``)."""

    def pack_item(
        self, loaded: LoadedModel, example: Example, task: str, timestamps: bool = False
    ) -> PackItem:
        """Packing size of an example (``timestamps``: its labels hold timestamp tokens)."""

    def packer(self, loaded: LoadedModel, task: str, language: str | None) -> WindowPacker:
        """A packer for this model's window and label budget."""

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Pad and stack training items into a batch."""

    def generate(
        self,
        loaded: LoadedModel,
        audios: Sequence[np.ndarray],
        language: str | None,
        task: str,
        num_beams: int = 1,
        max_new_tokens: int | None = None,
        precision: str = "auto",
    ) -> list[Transcript]:
        """Transcribe a batch of (n_samples,) 16-kHz arrays."""

    def default_lora_targets(self, freeze_encoder: bool) -> list[str] | str:
        """LoRA target modules (a list of names or a regex)."""

    def freeze_encoder(self, model: Any) -> None:
        """Stop the audio encoder's weights from training."""

    def allow_empty_transcripts(self, loaded: LoadedModel) -> None:
        """Let generation end at its first step (a model trained on non-speech windows
        may say nothing); saved with the model's generation config."""

    def save(self, loaded: LoadedModel, out_dir: str | Path) -> None:
        """Write the model and its processor to ``out_dir``."""

    def summed_loss(
        self,
        model: Any,
        unwrapped: Any,
        batch: dict[str, Any],
        label_smoothing: float = 0.0,
    ) -> tuple[Any, Any, Any]:
        """The loss of a collated ``batch`` summed over its utterances (or label tokens), the
        batch's target units (the trainer divides by those of the global batch) and the
        model's outputs. ``model`` may be wrapped for data parallelism, ``unwrapped`` is
        not. The family's kind's (``asrtune/models/losses.py``, ``kinds/``): token-level
        cross-entropy, or the model's own CTC / transducer loss."""


@dataclass(frozen=True)
class UsageContext:
    """What the usage snippet of a model card needs.

    ``base_model`` is set for a LoRA adapter (the base it loads onto); ``generation_config``
    is the published model's (or its base's) generation_config.json when known;
    ``own_generation_config``: the adapter carries its own (e.g. a fine-tune allowed to say
    nothing on silence), which replaces the base's. ``language_adapter``: the model ships
    an MMS language adapter (``adapter.<code>.safetensors``) that the code loads.
    """

    model_id: str
    base_model: str | None = None
    language: str | None = None
    generation_config: dict[str, Any] | None = None
    own_generation_config: bool = False
    language_adapter: str | None = None  # MMS: the code of the adapter.<code>.safetensors


@dataclass(frozen=True)
class FamilyRecipe:
    """How published code (model card, demo app) loads and runs one family with plain
    transformers/peft: its classes, the usage snippet, the extra packages, the export
    formats, the licence of its released checkpoints. The first families' recipes are in
    :mod:`asrtune.models.recipes`.

    ``licence``: the Hub licence id (``apache-2.0``, ``cc-by-4.0``) of the family's
    checkpoints whose lower-case Hub id starts with one of ``licence_ids``; a model card
    whose base is one of them carries it (a local base's README says its own).
    ``card_text``: a paragraph the model card adds about the base (e.g. the attribution a
    licence asks for); empty for none.

    ``app_decode`` is the body of the demo app's ``decode(model, processor, samples,
    language)``: ``samples`` is a (n,) float32 16-kHz array, ``language`` a code or None;
    it returns the text.
    """

    family: str
    model_class: str
    processor_class: str
    usage: Callable[[UsageContext], str]
    app_decode: str
    requirements: tuple[str, ...] = ()
    exports: dict[str, str] = field(default_factory=dict)  # format -> "module:function"
    # format -> "module:function" transcribing with an exported folder, called as
    # f(loaded, folder, audios, languages, task, max_new_tokens) -> list[Transcript]
    # (see asrtune.publish.exported); used by the export parity check
    export_decoders: dict[str, str] = field(default_factory=dict)
    licence: str = "other"
    licence_ids: tuple[str, ...] = ()
    card_text: str = ""
    # Hub id prefix -> licence, for released checkpoints under another licence than
    # ``licence`` (e.g. MMS's CC-BY-NC-4.0 beside XLS-R's Apache-2.0)
    other_licences: Mapping[str, str] = field(default_factory=dict)

    def licence_of(self, hub_id: str | None) -> str | None:
        """The licence of ``hub_id`` when it is one of this family's released checkpoints."""
        lowered = (hub_id or "").lower()
        for prefix, licence in self.other_licences.items():
            if lowered.startswith(prefix):
                return licence
        return self.licence if any(lowered.startswith(p) for p in self.licence_ids) else None

    def exporter(self, fmt: str) -> Callable[..., Any]:
        """The export function for ``fmt``; an AsrtuneError when this family has none."""
        if fmt not in self.exports:
            known = ", ".join(sorted(self.exports)) or "none"
            raise AsrtuneError(
                f"export to {fmt} is not supported for {self.family} models "
                f"(formats for {self.family}: {known})"
            )
        return _resolve(self.exports[fmt])

    def export_decoder(self, fmt: str) -> Callable[..., Any]:
        """The function that transcribes with an ``fmt`` export (see ``export_decoders``)."""
        if fmt not in self.export_decoders:
            raise AsrtuneError(f"asrtune cannot run {fmt} exports of {self.family} models")
        return _resolve(self.export_decoders[fmt])


def _resolve(target: str) -> Any:
    """The module ``"a.b"`` or the attribute ``"a.b:name"``."""
    module, _, name = target.partition(":")
    imported = importlib.import_module(module)
    return getattr(imported, name) if name else imported


@dataclass(frozen=True)
class Family:
    """One model family's registration (see the module docstring).

    ``name``: the family's name in configs and on the command line. ``adapter``: the path of
    its adapter module. ``kind``: its kind (one of :data:`KINDS`, the
    adapter's ``KIND``). ``label``: its name in the UI. ``trains_when_frozen``: what still
    trains with ``--freeze_encoder`` (help texts); ``lora_help``: what LoRA adapts by default
    (help texts). ``recipe``: ``"module:attribute"`` of
    its :class:`FamilyRecipe`. ``tiny_builder``:
    ``"module:function"`` called as ``f(out_dir, seed=0, size="tiny") -> Path``, writing a
    random checkpoint with a working processor, offline; ``tiny_sizes``: the ``size``
    values it takes (``"tiny"`` first). ``sizes``: the UI's size label → Hub id, and
    ``default_size`` one of them. ``model_types``: substrings of a checkpoint's
    ``config.json`` ``model_type`` (or of a Hub id) that mean this family (default: the
    name). ``learning_rate``: full fine-tuning's learning rate for this family (None:
    asrtune's default).
    """

    name: str
    adapter: str
    kind: str
    label: str
    capabilities: Capabilities
    recipe: str
    tiny_builder: str
    trains_when_frozen: str
    lora_help: str
    tiny_sizes: tuple[str, ...] = ("tiny",)
    sizes: Mapping[str, str] = field(default_factory=dict)
    default_size: str | None = None
    model_types: tuple[str, ...] = ()
    learning_rate: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {', '.join(KINDS)}")
        if not self.model_types:
            object.__setattr__(self, "model_types", (self.name,))
        if self.default_size is not None and self.default_size not in self.sizes:
            raise ValueError(f"{self.name}: default_size {self.default_size!r} not in sizes")

    def module(self) -> ModuleType:
        """The adapter module (imported on first use)."""
        return importlib.import_module(self.adapter)

    def describe(self) -> str:
        """One paragraph for ``asrtune families``: name, kind, capabilities, what freezing
        and LoRA touch, the tiny sizes."""
        caps = self.capabilities
        able = [
            f"decoding {caps.decoding}",
            *(["timestamps"] if caps.timestamps else []),
            *(["translate"] if caps.translate else []),
            *(["packing"] if caps.packing else []),
            *(["quantized base (QLoRA)"] if caps.quantized_base else []),
        ]
        return "\n".join(
            [
                f"{self.name} ({self.label}): kind {self.kind}; {', '.join(able)}",
                f"  --freeze_encoder: what still trains is {self.trains_when_frozen}",
                f"  LoRA adapts: {self.lora_help}",
                f"  make-tiny --size: {', '.join(self.tiny_sizes)}",
            ]
        )

    def publish_recipe(self) -> FamilyRecipe:
        """How published code (model card, demo app) loads and runs this family."""
        return _resolve(self.recipe)

    def build_tiny(self, out_dir: str | Path, seed: int = 0, size: str = "tiny") -> Path:
        """Write a random model of ``size`` (one of ``tiny_sizes``) to ``out_dir``."""
        if size not in self.tiny_sizes:
            raise AsrtuneError(f"size for {self.name}: one of {', '.join(self.tiny_sizes)}")
        return Path(_resolve(self.tiny_builder)(out_dir, seed=seed, size=size))

    def matches(self, model_type: str) -> bool:
        """Whether a ``model_type`` (or a lower-case Hub id) belongs to this family."""
        return any(kind in model_type for kind in self.model_types)

    # LoRA defaults and the training mix: the adapter's constants.

    @property
    def lora_learning_rate(self) -> float:
        return self.module().LORA_LEARNING_RATE

    @property
    def lora_task_type(self) -> str | None:
        return self.module().LORA_TASK_TYPE

    def default_lora_targets(self, freeze_encoder: bool) -> list[str] | str:
        return self.module().default_lora_targets(freeze_encoder)

    @property
    def training_mix(self) -> dict[str, Any]:
        """The :class:`asrtune.data.windows.TrainingMix` options this family trains with
        unless told otherwise (none for a family without defaults)."""
        return dict(self.module().TRAINING_MIX)


#: Every registered family by name, in registration order (the first is the default).
FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES` (a name registers once)."""
    if family.name in FAMILIES:
        raise ValueError(f"model family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


def family_spec(name: str) -> Family:
    """The registration of family ``name``; an AsrtuneError for an unknown name."""
    if name not in FAMILIES:
        raise AsrtuneError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})")
    return FAMILIES[name]
