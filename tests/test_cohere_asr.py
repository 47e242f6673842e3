"""The tiny Cohere Transcribe builder (the first step of the cohere_asr family): the folder
loads with transformers' own processor and model classes, its tokenizer round-trips text,
the processor builds the real decoder prompt, ``generate`` keeps that prompt and runs, and
the real size has the real parameter count."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from asrtune.models.tiny_cohere_asr import (
    LANGUAGES,
    make_tiny_cohere_asr,
    tiny_cohere_asr_config,
)
from tests.conftest import tone


@pytest.fixture(scope="module")
def tiny_cohere_asr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_cohere_asr(tmp_path_factory.mktemp("models") / "tiny-cohere-asr")


def test_tiny_checkpoint_loads_prompts_and_generates(tiny_cohere_asr: Path) -> None:
    from transformers import (
        AutoModelForSpeechSeq2Seq,
        AutoProcessor,
        CohereAsrForConditionalGeneration,
        CohereAsrProcessor,
    )
    from transformers.models.cohere_asr.processing_cohere_asr import LANGUAGES as REAL

    processor = AutoProcessor.from_pretrained(str(tiny_cohere_asr))
    model = AutoModelForSpeechSeq2Seq.from_pretrained(str(tiny_cohere_asr))
    assert isinstance(processor, CohereAsrProcessor)
    assert isinstance(model, CohereAsrForConditionalGeneration)
    assert 10_000 < sum(p.numel() for p in model.parameters()) < 500_000
    tokenizer = processor.tokenizer
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (2, 3, 4)
    assert set(LANGUAGES) == REAL
    for text in ["Hello world, this is a test.", "Ça va très bien — merci!", "日本語 ok"]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == text
    for language in LANGUAGES:  # every language's prompt, punctuation on and off
        for punctuation in (True, False):
            prompt = processor.get_decoder_prompt_ids(language, punctuation)
            assert tokenizer.unk_token_id not in prompt and len(prompt) == 10
    prompt = processor.get_decoder_prompt_ids("fr", punctuation=False)
    assert tokenizer.convert_ids_to_tokens(prompt)[4:7] == ["<|fr|>", "<|fr|>", "<|nopnc|>"]
    assert model.generation_config.decoder_start_token_id == prompt[0]  # "▁"
    clips = [tone(1.0, 300), tone(1.5, 500)]
    inputs = processor(clips, language="fr", punctuation=False, sampling_rate=16000)
    assert inputs["input_features"].shape[-1] == 128
    ids = model.generate(**inputs, max_new_tokens=3)
    assert ids.shape == (2, 13) and ids[:, :10].tolist() == [prompt, prompt]  # prompt kept


def test_tiny_builder_is_seeded_and_leaves_the_callers_rng(tmp_path: Path) -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = load_file(str(make_tiny_cohere_asr(tmp_path / "a", seed=0) / "model.safetensors"))
    assert torch.equal(torch.random.get_rng_state(), state)
    again = load_file(str(make_tiny_cohere_asr(tmp_path / "b", seed=0) / "model.safetensors"))
    other = load_file(str(make_tiny_cohere_asr(tmp_path / "c", seed=1) / "model.safetensors"))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_real_size_matches_transformers_defaults_and_the_2b_model() -> None:
    """``03-2026`` is transformers' CohereAsrConfig (the defaults describe
    CohereLabs/cohere-transcribe-03-2026, a 2B model): 2,065,647,872 parameters."""
    from transformers import CohereAsrConfig, CohereAsrForConditionalGeneration

    config = tiny_cohere_asr_config("03-2026")
    defaults = CohereAsrConfig(encoder_config={})
    for key in ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size"):
        assert getattr(config, key) == getattr(defaults, key), key
        assert getattr(config.encoder_config, key, None) == getattr(
            defaults.encoder_config, key, None
        ), key
    with torch.device("meta"):
        model = CohereAsrForConditionalGeneration(config)
    assert sum(p.numel() for p in model.parameters()) == 2_065_647_872
