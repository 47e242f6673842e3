"""Whisper → ONNX with ``torch.onnx`` (the dynamo exporter), and a greedy decoder over it.

optimum's ONNX exporter does not support transformers 5, so the two graphs are exported
directly:

- ``encoder_model.onnx``: ``input_features`` (B, n_mels, frames) float32 →
  ``last_hidden_state`` (B, frames / 2, d_model);
- ``decoder_model.onnx``: ``input_ids`` (B, T) int64 + ``encoder_hidden_states`` →
  ``logits`` (B, T, vocab). No KV cache: each step re-reads the whole prefix, which keeps the
  graph simple at O(T²) decoder cost.

The folder also holds config.json, generation_config.json, the processor files and
``preprocessor_config.json``, so the log-mel features and the tokenizer come from
transformers (or any Whisper front end). :func:`greedy_decode` runs the graphs with
onnxruntime and the generation config's suppress rules, like transformers' greedy search.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrtune.errors import AsrtuneError
from asrtune.publish.bundle import CONFIG_FILES, PROCESSOR_FILES

log = logging.getLogger("asrtune")

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"


class _Encoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = model.get_encoder()

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_features=input_features).last_hidden_state


class _Decoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = model.get_decoder()
        self.proj_out = model.proj_out

    def forward(self, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        hidden = self.decoder(
            input_ids=input_ids, encoder_hidden_states=encoder_hidden_states, use_cache=False
        ).last_hidden_state
        return self.proj_out(hidden)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise AsrtuneError(
            "--format onnx needs onnx and onnxscript: pip install 'asrtune[onnx]'"
        ) from exc


def whisper_to_onnx(model_dir: Path, output: Path, quantization: str | None = None) -> None:
    """Export the Whisper in ``model_dir`` to ``output`` (see the module docstring)."""
    from transformers import WhisperForConditionalGeneration

    from asrtune.publish.export import write_preprocessor_config

    if quantization is not None:
        raise AsrtuneError("ONNX export writes float32 graphs; --quantization is for ct2")
    _require_onnx()
    model = WhisperForConditionalGeneration.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()
    config = model.config
    output.mkdir(parents=True, exist_ok=True)
    features = torch.zeros(2, config.num_mel_bins, 2 * config.max_source_positions)
    batch = torch.export.Dim("batch", min=1, max=1024)
    length = torch.export.Dim("sequence", min=1, max=config.max_target_positions)
    encoder, decoder = _Encoder(model).eval(), _Decoder(model).eval()
    with torch.no_grad():
        hidden = encoder(features)
        start = config.decoder_start_token_id
        ids = torch.full((2, 3), start, dtype=torch.long)
        _export(
            encoder,
            (features,),
            output / ENCODER_FILE,
            input_names=["input_features"],
            output_names=["last_hidden_state"],
            dynamic_shapes={"input_features": {0: batch}},
        )
        _export(
            decoder,
            (ids, hidden),
            output / DECODER_FILE,
            input_names=["input_ids", "encoder_hidden_states"],
            output_names=["logits"],
            dynamic_shapes={
                "input_ids": {0: batch, 1: length},
                "encoder_hidden_states": {0: batch},
            },
        )
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and (path.name in CONFIG_FILES or path.name in PROCESSOR_FILES):
            shutil.copyfile(path, output / path.name)
    write_preprocessor_config(model_dir, output)


def _export(module: torch.nn.Module, args: tuple, path: Path, **kwargs: Any) -> None:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(module, args, dynamo=True, verbose=False, **kwargs)
        program.save(str(path))
    except Exception as exc:  # the exporter raises many types; one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AsrtuneError(f"ONNX export of {path.name} failed: {first}") from exc


def greedy_decode(
    folder: str | Path,
    input_features: np.ndarray,
    prompt: list[int],
    max_length: int | None = None,
) -> list[list[int]]:
    """Greedy decoding with the exported graphs (onnxruntime, CPU).

    ``input_features`` (B, n_mels, frames) float32 log-mel; ``prompt`` the start tokens
    (``<|startoftranscript|>`` [, language, task], ``<|notimestamps|>``). Returns one id list
    per input, prompt included, ending at ``<|endoftext|>`` or at ``max_length`` tokens
    (default: the generation config's). Applies the generation config's
    ``suppress_tokens`` and, on the first step, ``begin_suppress_tokens``.
    """
    import onnxruntime as ort

    folder = Path(folder)
    gen: dict[str, Any] = json.loads((folder / "generation_config.json").read_text())
    eos = gen["eos_token_id"]
    eos = eos[0] if isinstance(eos, list) else eos
    max_length = max_length or gen.get("max_length") or 448
    options = ort.SessionOptions()
    options.log_severity_level = 3
    encoder = ort.InferenceSession(str(folder / ENCODER_FILE), options)
    decoder = ort.InferenceSession(str(folder / DECODER_FILE), options)
    hidden = encoder.run(None, {"input_features": input_features.astype(np.float32)})[0]
    batch = input_features.shape[0]
    ids = np.array([prompt] * batch, dtype=np.int64)
    done = np.zeros(batch, dtype=bool)
    suppress = list(gen.get("suppress_tokens") or [])
    begin_suppress = list(gen.get("begin_suppress_tokens") or [])
    while ids.shape[1] < max_length and not done.all():
        logits = decoder.run(None, {"input_ids": ids, "encoder_hidden_states": hidden})[0]
        last = logits[:, -1, :].astype(np.float32)
        if suppress:
            last[:, suppress] = -np.inf
        if ids.shape[1] == len(prompt) and begin_suppress:
            last[:, begin_suppress] = -np.inf
        step = np.where(done, eos, last.argmax(axis=-1))
        ids = np.concatenate([ids, step[:, None]], axis=1)
        done |= step == eos
    result = []
    for row in ids.tolist():
        end = row.index(eos, len(prompt)) + 1 if eos in row[len(prompt) :] else len(row)
        result.append(row[:end])
    return result
