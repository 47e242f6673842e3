"""Random-init models with real architectures (make-tiny --size) and the GPU throughput
benchmark script, run here at the tiny size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import VoxtralForConditionalGeneration, WhisperForConditionalGeneration

from asrtune.cli import main
from asrtune.models import FAMILIES
from asrtune.models.tiny import build_tiny_whisper_tokenizer, tiny_whisper_config
from asrtune.models.tiny_voxtral import tiny_voxtral_config

ROOT = Path(__file__).resolve().parents[1]


def _parameters(model_class: type, config: object) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in model_class(config).parameters())


@pytest.mark.parametrize(
    ("size", "expected"), [("small", 241_734_912), ("large-v3", 1_543_490_560)]
)
def test_whisper_sizes_match_the_real_parameter_counts(size: str, expected: int) -> None:
    config = tiny_whisper_config(0, build_tiny_whisper_tokenizer(), size)
    assert _parameters(WhisperForConditionalGeneration, config) == expected


def test_voxtral_mini_size_matches_the_real_parameter_count() -> None:
    config = tiny_voxtral_config("mini-3b")
    assert config.audio_config.max_source_positions == 1500  # 30-s chunks
    assert _parameters(VoxtralForConditionalGeneration, config) == 4_676_271_104


@pytest.mark.parametrize(
    # the real checkpoints' parameters (tied embeddings counted once): Qwen/Qwen3-ASR-0.6B
    # 782,426,112 and -1.7B 2,038,052,480, as counted by third parties from the released
    # weights (keras-hub's qwen3_asr_1.7b preset says 2038052480)
    ("size", "expected"),
    [("0.6b", 782_426_112), ("1.7b", 2_038_052_480)],
)
def test_qwen3_asr_sizes_match_the_real_parameter_counts(size: str, expected: int) -> None:
    from transformers import Qwen3ASRForConditionalGeneration

    from asrtune.models.tiny_qwen3_asr import tiny_qwen3_asr_config

    config = tiny_qwen3_asr_config(size)
    assert config.text_config.vocab_size == 151_936 and config.text_config.tie_word_embeddings
    assert (config.audio_config.n_window, config.audio_config.n_window_infer) == (50, 800)
    assert _parameters(Qwen3ASRForConditionalGeneration, config) == expected


def test_parakeet_tdt_v3_size_matches_the_real_parameter_count() -> None:
    from transformers import ParakeetForTDT

    from asrtune.models.tiny_parakeet import tiny_parakeet_tdt_config, tiny_parakeet_tdt_tokenizer

    tokenizer = tiny_parakeet_tdt_tokenizer(8192)  # the tiny one, padded: <blank> last
    assert tokenizer.convert_tokens_to_ids("<blank>") == len(tokenizer) - 1 == 8192
    config = tiny_parakeet_tdt_config(pad_token_id=2, size="0.6b-v3")
    assert (config.vocab_size, config.blank_token_id, config.pad_token_id) == (8193, 8192, 2)
    assert config.durations == [0, 1, 2, 3, 4] and config.encoder_config.num_mel_bins == 128
    # nvidia/parakeet-tdt-0.6b-v3's parameters as NeMo counts them in its .nemo checkpoint
    # (627,008,134, asserted by third-party scripts that restore it; batch-norm statistics
    # and the preprocessor's window and filterbank not counted), the same in transformers
    assert _parameters(ParakeetForTDT, config) == 627_008_134


@pytest.mark.parametrize(
    ("size", "layers", "expected"), [("0.6b", 24, 608_799_745), ("1.1b", 42, 1_062_540_289)]
)
def test_parakeet_ctc_sizes_have_the_real_architectures(
    size: str, layers: int, expected: int
) -> None:
    from transformers import ParakeetForCTC

    from asrtune.models.tiny_parakeet import tiny_parakeet_ctc_config, tiny_parakeet_tokenizer

    tokenizer = tiny_parakeet_tokenizer(1024)  # the tiny one, padded: the blank last
    config = tiny_parakeet_ctc_config(len(tokenizer), size)
    assert (config.vocab_size, config.pad_token_id) == (1025, 1024) == (len(tokenizer), 1024)
    encoder = config.encoder_config
    assert (encoder.num_hidden_layers, encoder.hidden_size, encoder.num_mel_bins) == (
        layers,
        1024,
        80,
    )
    # FastConformer XL / XXL with a 1025-way CTC head (the model cards: 0.6B and 1.1B)
    assert _parameters(ParakeetForCTC, config) == expected


def test_make_tiny_rejects_a_size_of_another_family(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["make-tiny", "out", "--family", "voxtral", "--size", "large-v3"])
    assert exit_info.value.code == 2
    assert "one of tiny, mini-3b" in capsys.readouterr().err


def _bench_module():
    spec = importlib.util.spec_from_file_location(
        "gpu_throughput", ROOT / "benchmarks" / "gpu_throughput.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("family", list(FAMILIES))
def test_gpu_throughput_script_runs_the_training_path(
    family: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bench = _bench_module()
    out = tmp_path / "result.json"
    argv = [
        *("--family", family, "--size", "tiny", "--batch-size", "2", "--steps", "3"),
        *("--warmup", "1", "--files", "6", "--eval-clips", "4", "--eval-batch-size", "2"),
        *("--eval-tokens", "6"),
        *("--workers", "0", "--work-dir", str(tmp_path / "work"), "--output", str(out)),
        *(["--lora"] if family == "voxtral" else []),
    ]
    assert bench.main(argv) == 0
    result = __import__("json").loads(out.read_text())
    assert result["steps_timed"] == 3 and result["step_seconds_median"] > 0
    assert result["samples_per_second"] >= result["windows_per_second"] > 0
    assert result["flops_per_step"] > 0
    assert result["eval_audio_seconds_per_second"] > 0
    # a mean per utterance under the cap (a sum over utterances or a character count would
    # break it; re-encoding a decoded hypothesis gives back its tokens, give or take one)
    assert result["eval_tokens_per_utterance"] <= 6 + 1
    trainable, total = result["trainable_parameters"], result["parameters"]
    # voxtral: LoRA; the raw-audio self-supervised encoders: their conv feature encoder
    # is frozen at load
    partly_frozen = {"voxtral", "wav2vec2", "hubert", "wavlm", "data2vec_audio"}
    assert (trainable < total) if family in partly_frozen else (trainable == total)
