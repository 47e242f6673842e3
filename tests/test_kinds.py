"""The kinds carry the shared work: a family of the encoder-decoder kind that declares only
its loader and decoder prompt (tests/plain_encoder_decoder.py) and one registration trains
and transcribes with nothing else; the kinds' losses equal the models' own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
import torch

from asrtune.data.audio import load_row_audio
from asrtune.data.rows import load_rows
from asrtune.dataset import WindowDataset
from asrtune.errors import AsrtuneError
from asrtune.models import FAMILIES, LoadedModel
from asrtune.models.family import Capabilities, Family, FamilyAdapter, register
from asrtune.models.tiny import make_tiny_whisper
from asrtune.training_data import admit_rows
from tests import plain_encoder_decoder as plain
from tests.conftest import tone, write_dataset

PLAIN = Family(
    name="plain_encoder_decoder",
    adapter="tests.plain_encoder_decoder",
    kind="encoder_decoder",
    label="Plain encoder-decoder",
    capabilities=Capabilities(decoding="generative", packing=False),
    recipe="asrtune.models.recipes:WHISPER_RECIPE",
    tiny_builder="asrtune.models.tiny:make_tiny_whisper",
    trains_when_frozen="the decoder",
    lora_help="q,k,v,out_proj,fc1,fc2",
)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    """The plain family registered (for this module only) over a tiny English Whisper."""
    register(PLAIN)
    try:
        folder = make_tiny_whisper(tmp_path_factory.mktemp("plain") / "m", multilingual=False)
        yield plain.load(str(folder), dtype=torch.float32)
    finally:
        FAMILIES.pop(PLAIN.name)


def test_a_declared_family_meets_the_contract(loaded: LoadedModel) -> None:
    assert isinstance(plain, FamilyAdapter)
    assert loaded.adapter is plain and loaded.spec is PLAIN
    assert type(loaded.model).__name__ == "WhisperForConditionalGeneration"
    prompt = plain.decoder_prompt(loaded, None, "transcribe")
    tokenizer = loaded.processor.tokenizer
    labels = plain.encode_labels(loaded, ["hello", "world"], None, "transcribe")
    text = tokenizer.encode("hello world", add_special_tokens=False)
    assert labels == [*prompt, *text, tokenizer.eos_token_id]
    with pytest.raises(AsrtuneError):
        plain.encode_labels(loaded, ["a"], None, "transcribe", [(0.0, 1.0)])
    with pytest.raises(AsrtuneError):
        plain.encode_labels(loaded, ["a"], None, "translate")


def test_the_kinds_loss_is_the_models_own_on_a_padded_batch(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    rows = load_rows(write_dataset(tmp_path / "data", 3)).rows
    examples, skipped = admit_rows(loaded, rows, "transcribe")
    assert not skipped
    data = WindowDataset(loaded, examples, "transcribe", False, seed=0)
    batch = plain.collate([data[i] for i in range(len(data))])
    assert batch["labels"].eq(-100).any()  # padded
    summed, units, _ = plain.summed_loss(loaded.model, loaded.model, batch)
    own = loaded.model(**batch).loss  # labels given: the model's mean over label tokens
    assert int(units) == int(batch["labels"].ne(-100).sum())
    torch.testing.assert_close(summed / units, own, rtol=1e-5, atol=1e-6)


def test_a_declared_family_learns_a_transcript_and_says_it(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    """A few steps on one clip with a short transcript: the kind's generate then says it."""
    torch.manual_seed(0)
    folder = tmp_path / "data"
    folder.mkdir()
    sf.write(folder / "a.wav", tone(1.0, 300), 16000)
    manifest = folder / "manifest.jsonl"
    manifest.write_text(json.dumps({"audio_path": "a.wav", "text": "yes", "language": "en"}))
    rows = load_rows(manifest).rows
    examples, _ = admit_rows(loaded, rows, "transcribe")
    data = WindowDataset(loaded, examples, "transcribe", False, seed=0)
    batch = plain.collate([data[0]])
    model = loaded.model
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(40):
        summed, units, _ = plain.summed_loss(model, model, batch)
        (summed / units).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    texts = plain.generate(loaded, [load_row_audio(rows[0])], None, "transcribe", precision="fp32")
    assert texts == ["yes"] and not texts[0].capped
