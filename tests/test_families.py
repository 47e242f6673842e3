"""Every registered model family against the contract of asrtune/models/family.py: its
adapter's functions and constants, its declared capabilities, its make-tiny builder, its UI
sizes and its publish recipe."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from asrtune.commands import make_tiny
from asrtune.data.batching import PackItem, WindowPacker
from asrtune.data.rows import load_rows
from asrtune.dataset import WindowDataset
from asrtune.errors import AsrtuneError
from asrtune.models import FAMILIES, Limits, LoadedModel, detect_family, load_model
from asrtune.models.family import DECODINGS, Capabilities, Family, FamilyAdapter, family_spec
from asrtune.models.kinds import KINDS
from asrtune.publish.card import base_license
from asrtune.publish.families import UsageContext, recipe_for
from asrtune.training_data import admit_rows
from asrtune.ui.models import DEFAULT_SIZE, FAMILY_CHOICES, FAMILY_NAMES, SIZES
from tests.conftest import tone, write_dataset

NAMES = list(FAMILIES)


def _contract_functions() -> dict[str, inspect.Signature]:
    """The contract's functions and their signatures without ``self``."""
    out = {}
    for name, member in vars(FamilyAdapter).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        signature = inspect.signature(member)
        out[name] = signature.replace(parameters=list(signature.parameters.values())[1:])
    return out


def _contract_constants() -> list[str]:
    return [name for name in FamilyAdapter.__annotations__ if name.isupper()]


def test_the_contract_lists_the_shared_functions() -> None:
    assert {
        "load",
        "load_processor",
        "limits",
        "sole_language",
        "encode_labels",
        "window_item",
        "pack_item",
        "packer",
        "collate",
        "generate",
        "default_lora_targets",
        "freeze_encoder",
        "save",
        "summed_loss",
    } <= set(_contract_functions())
    assert {"LORA_LEARNING_RATE", "KIND"} <= set(_contract_constants())


@pytest.mark.parametrize("name", NAMES)
def test_adapter_has_the_contract_functions_with_compatible_signatures(name: str) -> None:
    adapter = FAMILIES[name].module()
    assert isinstance(adapter, FamilyAdapter)
    for function, contract in _contract_functions().items():
        actual = inspect.signature(getattr(adapter, function)).parameters
        wanted = contract.parameters
        # the contract's parameters, in order, same kinds, a default where it has one
        assert list(actual)[: len(wanted)] == list(wanted), (name, function)
        for param in wanted.values():
            got = actual[param.name]
            assert got.kind == param.kind, (name, function, param.name)
            has_default = got.default is not inspect.Parameter.empty
            assert has_default == (param.default is not inspect.Parameter.empty), (
                name,
                function,
                param.name,
            )
        # anything more must be optional
        for extra in list(actual)[len(wanted) :]:
            assert actual[extra].default is not inspect.Parameter.empty, (name, function, extra)


@pytest.mark.parametrize("name", NAMES)
def test_adapter_constants_and_capabilities_agree(name: str) -> None:
    family = FAMILIES[name]
    adapter = family.module()
    caps = family.capabilities
    assert caps.decoding in DECODINGS
    # the family's kind: declared by the adapter and the registration alike, and the
    # kind's decoding and label shift
    assert adapter.KIND == family.kind in KINDS
    decoding = {"ctc": "ctc", "transducer": "transducer"}.get(family.kind, "generative")
    assert caps.decoding == decoding
    assert (family.kind == "audio_llm") == adapter.LOSS_SHIFTS_LABELS
    assert family.trains_when_frozen and family.lora_help
    assert isinstance(adapter.LORA_LEARNING_RATE, float) and adapter.LORA_LEARNING_RATE > 0
    assert isinstance(adapter.LOSS_SHIFTS_LABELS, bool)
    assert adapter.LORA_TASK_TYPE in (None, "CAUSAL_LM", "SEQ_2_SEQ_LM", "FEATURE_EXTRACTION")
    assert isinstance(getattr(torch, adapter.GPU_INFERENCE_DTYPE), torch.dtype)
    assert family.lora_learning_rate == adapter.LORA_LEARNING_RATE
    assert family.lora_task_type == adapter.LORA_TASK_TYPE
    for frozen in (True, False):
        targets = family.default_lora_targets(frozen)
        assert targets and isinstance(targets, (list, str))
    # timestamps: segment decoding exists, and only then may the mix train with them
    assert hasattr(adapter, "generate_segments") == caps.timestamps
    if not caps.timestamps:
        assert not family.training_mix.get("timestamp_share")
    if caps.timestamps:
        assert inspect.signature(adapter.generate_segments).parameters.keys() == (
            inspect.signature(adapter.generate).parameters.keys()
        )
    # hotwords: boosted decoding exists, with generate's parameters and the hotwords
    assert hasattr(adapter, "generate_boosted") == caps.hotwords
    if caps.hotwords:
        names = list(inspect.signature(adapter.generate).parameters)
        assert list(inspect.signature(adapter.generate_boosted).parameters) == (
            [*names[:4], "hotwords", *names[4:]]
        )
    # a quantized base names its quantizations
    assert bool(getattr(adapter, "QUANTIZATIONS", ())) == caps.quantized_base
    # frame-level decoders (CTC, transducer) transcribe; they do not translate
    if caps.decoding != "generative":
        assert not caps.translate


@pytest.mark.parametrize("name", NAMES)
def test_registration_holds_ui_sizes_tiny_builder_and_recipe(name: str) -> None:
    family = FAMILIES[name]
    assert family_spec(name) is family
    assert family.matches(name) and all(family.matches(kind) for kind in family.model_types)
    assert family.label in FAMILY_CHOICES and FAMILY_NAMES[family.label] == name
    assert family.sizes and SIZES[family.label] == dict(family.sizes)
    assert DEFAULT_SIZE[family.label] == family.default_size in family.sizes
    for hub_id in family.sizes.values():
        assert detect_family(hub_id) == name
    assert family.tiny_sizes[0] == "tiny"
    assert make_tiny.build_parser().parse_args(["out", "--family", name]).family == name
    recipe = recipe_for(name)
    assert recipe.family == name
    for ctx in (UsageContext("me/model", language="en"), UsageContext("me/a", base_model="b")):
        compile(recipe.usage(ctx), f"<{name} usage>", "exec")
    compile(f"def decode(model, processor, samples, language):\n{recipe.app_decode}", name, "exec")
    # the family's licence goes on the cards of fine-tunes of its released checkpoints
    for hub_id in family.sizes.values():
        licence = recipe.licence_of(hub_id)
        assert licence == base_license(hub_id) and licence not in (None, "other")
        assert licence == recipe.licence or licence in recipe.other_licences.values()


@pytest.fixture(scope="module", params=NAMES)
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """Each family's tiny model, written by its registered builder and loaded."""
    name = request.param
    if name == "voxtral":
        pytest.importorskip("mistral_common")
    out = FAMILIES[name].build_tiny(tmp_path_factory.mktemp("families") / name)
    assert detect_family(str(out)) == name
    return load_model(str(out))


def test_tiny_builder_writes_a_model_the_adapter_runs(built: LoadedModel, tmp_path: Path) -> None:
    family = built.spec
    adapter = built.adapter
    caps = built.capabilities
    assert isinstance(adapter.limits(built), Limits)
    manifest = write_dataset(tmp_path / "data", 3)
    examples, skipped = admit_rows(built, load_rows(manifest).rows, "transcribe")
    assert not skipped and len(examples) == 3
    assert isinstance(adapter.pack_item(built, examples[0], "transcribe"), PackItem)
    assert isinstance(adapter.packer(built, "transcribe", "en"), WindowPacker)
    data = WindowDataset(built, examples, "transcribe", caps.packing, seed=0)
    batch = adapter.collate([data[i] for i in range(len(data))])
    assert batch["labels"].shape[0] == len(data)
    texts = adapter.generate(built, [tone(1.0, 300)], "en", "transcribe", max_new_tokens=3)
    assert len(texts) == 1 and isinstance(texts[0], str)
    # declared capabilities hold for the loaded model
    spans = [(0.0, 1.0)]
    if caps.timestamps:
        assert adapter.encode_labels(built, ["a b"], "en", "transcribe", spans)
        assert adapter.generate_segments(built, [np.zeros(16000, np.float32)], "en", "transcribe")
    else:
        with pytest.raises(AsrtuneError):
            adapter.encode_labels(built, ["a b"], "en", "transcribe", spans)
        with pytest.raises(AsrtuneError):
            adapter.pack_item(built, examples[0], "transcribe", timestamps=True)
    if caps.translate:
        assert adapter.encode_labels(built, ["a b"], "fr", "translate")
    else:
        with pytest.raises(AsrtuneError):
            adapter.encode_labels(built, ["a b"], "fr", "translate")
    if not caps.quantized_base:
        with pytest.raises(AsrtuneError, match="quantization"):
            load_model(built.source, quantization="4bit")
    assert family.default_lora_targets(False)
    # the family's own loss (its kind's) on a collated batch: finite, with target units,
    # and it reaches the weights
    built.model.train()
    summed, units, _ = adapter.summed_loss(built.model, built.model, batch)
    assert torch.isfinite(summed) and summed > 0 and int(units) > 0
    summed.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in built.model.parameters())
    built.model.zero_grad()
    built.model.eval()


def test_families_command_lists_every_family_with_its_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from asrtune.cli import main

    assert main(["families"]) == 0
    out = capsys.readouterr().out
    for family in FAMILIES.values():
        assert f"{family.name} ({family.label}): kind {family.kind};" in out
        assert family.trains_when_frozen in out
    assert main(["families", "--names"]) == 0
    assert capsys.readouterr().out.split() == NAMES


def test_capabilities_express_every_decoding_kind() -> None:
    ctc = Capabilities(decoding="ctc", timestamps=False, translate=False, packing=False)
    assert ctc.decoding == "ctc" and not ctc.packing
    assert Capabilities(decoding="transducer").decoding == "transducer"
    with pytest.raises(ValueError, match="decoding"):
        Capabilities(decoding="beam")  # type: ignore[arg-type]


def test_a_family_registers_once_and_names_its_default_size() -> None:
    from asrtune.models.family import register

    with pytest.raises(ValueError, match="twice"):
        register(FAMILIES[NAMES[0]])
    with pytest.raises(ValueError, match="default_size"):
        Family(
            name="x",
            adapter="x",
            kind="encoder_decoder",
            label="X",
            capabilities=Capabilities(),
            recipe="x:y",
            tiny_builder="x:y",
            trains_when_frozen="the decoder",
            lora_help="q,v",
            sizes={"a": "org/a"},
            default_size="b",
        )
    with pytest.raises(ValueError, match="kind"):
        Family(
            name="x",
            adapter="x",
            kind="diffusion",
            label="X",
            capabilities=Capabilities(),
            recipe="x:y",
            tiny_builder="x:y",
            trains_when_frozen="the decoder",
            lora_help="q,v",
        )
    with pytest.raises(AsrtuneError, match="unknown model family"):
        family_spec("nope")
