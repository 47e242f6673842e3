"""Import CTranslate2 / faster-whisper Whisper models as Hugging Face transformers checkpoints.

No public tool converts CTranslate2 back to transformers, so this module reads CTranslate2's
``model.bin`` itself. The layout (little-endian), as written by ``ctranslate2.specs.model_spec``
(``ModelSpec._serialize``) and read by ``src/models/model.cc``::

    u32 binary_version                  # 6 today; versions 2-6 are read here
    str spec_name                       # "WhisperSpec"          (version >= 2)
    u32 spec_revision                   # 3 for Whisper          (version >= 2)
    u32 n_variables
    n_variables x:
        str name                        # e.g. "encoder/layer_0/ffn/linear_0/weight"
        u8  rank
        u32 dims[rank]
        version >= 4: u8 dtype_id       # 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16
                      u32 n_bytes
        version <  4: u8 item_size      # 4 -> f32, 2 -> i16, 1 -> i8
                      u32 n_items
        raw bytes
    u32 n_aliases                       # version >= 3
    n_aliases x: str alias, str target

where ``str`` is a ``u16`` length that counts a trailing NUL, then the bytes (NUL included).
CTranslate2 aliases *any* two variables with equal values (the first in alphabetical order is
kept), e.g. ``decoder/projection/weight -> decoder/embeddings/weight`` but also every all-zero
bias of a freshly initialised model; an alias also aliases ``<name>_scale``.

Quantised weights carry ``<name>_scale``: int8 rows are ``float = int8 / scale[:, None]`` (one
scale per output row, also for the 3-D conv weights), int16 uses one scalar scale.

Weights are written as float32 safetensors by default: float16/bfloat16/int8 values upcast to
float32 exactly (int8 up to the dequantisation arithmetic), so the transformers model computes
what CTranslate2 would compute with ``compute_type="float32"``. Pass ``dtype=torch.float16`` to
halve the size instead.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizerFast,
)

from asrtune.errors import AsrtuneError

__all__ = ["Ct2Model", "import_ct2", "read_ct2_model"]

MAX_BINARY_VERSION = 6
MAX_WHISPER_REVISION = 3
MULTILINGUAL_MIN_VOCAB = 51865  # tiny.en .. medium.en have 51864, multilingual 51865/51866
EOT = "<|endoftext|>"
SOT = "<|startoftranscript|>"

# dtype ids of include/ctranslate2/types.h, as used by binary version >= 4
_DTYPES = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}
# binary versions < 4 only stored the item size
_LEGACY_DTYPES = {4: torch.float32, 2: torch.int16, 1: torch.int8}


@dataclass
class Ct2Model:
    """The raw content of a CTranslate2 ``model.bin``.

    ``variables`` maps names to tensors in their stored dtype and shape; ``aliases`` maps an
    alias name to the variable it shares storage with.
    """

    version: int
    spec: str
    revision: int
    variables: dict[str, torch.Tensor] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """Follow aliases until a stored variable name (or an unknown name) is reached."""
        for _ in range(len(self.aliases) + 1):
            if name in self.variables or name not in self.aliases:
                return name
            name = self.aliases[name]
        return name

    def get(self, name: str) -> torch.Tensor | None:
        """The stored tensor behind ``name`` (through aliases), or None."""
        return self.variables.get(self.resolve(name))

    def require(self, name: str) -> torch.Tensor:
        """Like :meth:`get`, raising :class:`AsrtuneError` when the variable is missing."""
        value = self.get(name)
        if value is None:
            raise AsrtuneError(f"model.bin has no variable {name!r}; is it a Whisper model?")
        return value

    def float(self, name: str) -> torch.Tensor:
        """Variable ``name`` as float32, dequantised with ``<name>_scale`` when int8/int16."""
        value = self.require(name)
        if value.is_floating_point():
            return value.to(torch.float32)
        if value.dtype not in (torch.int8, torch.int16):
            raise AsrtuneError(f"variable {name!r} has unsupported dtype {value.dtype}")
        scale = self.get(self.resolve(name) + "_scale")
        if scale is None:
            raise AsrtuneError(f"quantised variable {name!r} has no {name}_scale")
        scale = scale.to(torch.float32)
        if scale.numel() > 1:  # one scale per output row: [rows] -> [rows, 1, ...]
            scale = scale.reshape(-1, *([1] * (value.dim() - 1)))
        return value.to(torch.float32) / scale

    def scalar(self, name: str) -> int | None:
        """An integer scalar variable such as ``encoder/num_heads``, or None if absent."""
        value = self.get(name)
        return None if value is None or value.numel() != 1 else int(value.item())


# --------------------------------------------------------------------------- binary reader


class _Reader:
    """Little-endian primitive reads that turn a short file into an AsrtuneError."""

    def __init__(self, stream: BinaryIO, path: Path) -> None:
        self.stream = stream
        self.path = path

    def bytes(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise AsrtuneError(f"{self.path} is truncated (wanted {n} bytes, got {len(data)})")
        return data

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.bytes(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        """A ``u16`` length (NUL included) followed by UTF-8 bytes and the NUL."""
        raw = self.bytes(self.unpack("H"))
        return raw.split(b"\0", 1)[0].decode("utf-8")


def _read_variable(reader: _Reader, version: int) -> tuple[str, torch.Tensor]:
    """One ``(name, tensor)`` record; the tensor keeps the stored dtype and shape."""
    name = reader.string()
    rank = reader.unpack("B")
    shape = [reader.unpack("I") for _ in range(rank)]
    if version >= 4:
        type_id = reader.unpack("B")
        n_bytes = reader.unpack("I")
        dtype = _DTYPES.get(type_id)
        if dtype is None:
            raise AsrtuneError(f"variable {name!r} has unsupported CTranslate2 dtype {type_id}")
    else:
        item_size = reader.unpack("B")
        n_bytes = reader.unpack("I") * item_size
        dtype = _LEGACY_DTYPES.get(item_size)
        if dtype is None:
            raise AsrtuneError(f"variable {name!r} has unsupported item size {item_size}")
    data = bytearray(reader.bytes(n_bytes))
    tensor = torch.frombuffer(data, dtype=dtype) if n_bytes else torch.empty(0, dtype=dtype)
    expected = 1
    for dim in shape:
        expected *= dim
    if tensor.numel() != expected:
        raise AsrtuneError(f"variable {name!r}: {n_bytes} bytes do not fit shape {shape}")
    return name, tensor.reshape(shape)


def read_ct2_model(path: str | Path) -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` (binary versions 2 to 6) into a :class:`Ct2Model`."""
    path = Path(path)
    if sys.byteorder != "little":
        raise AsrtuneError("reading CTranslate2 models needs a little-endian machine")
    with path.open("rb") as stream:
        reader = _Reader(stream, path)
        version = reader.unpack("I")
        if not 2 <= version <= MAX_BINARY_VERSION:
            raise AsrtuneError(
                f"{path}: unsupported CTranslate2 binary version {version} "
                f"(supported: 2 to {MAX_BINARY_VERSION})"
            )
        model = Ct2Model(version=version, spec=reader.string(), revision=reader.unpack("I"))
        for _ in range(reader.unpack("I")):
            name, tensor = _read_variable(reader, version)
            model.variables[name] = tensor
        if version >= 3:
            for _ in range(reader.unpack("I")):
                alias = reader.string()
                model.aliases[alias] = reader.string()
    return model


# --------------------------------------------------------------------------- name mapping


def _linear(model: Ct2Model, scope: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``scope/weight`` as float32 ``[out, in]`` and ``scope/bias`` ``[out]`` (or None)."""
    weight = model.float(f"{scope}/weight")
    bias = model.float(f"{scope}/bias") if model.get(f"{scope}/bias") is not None else None
    return weight, bias


def _put_linear(
    out: dict[str, torch.Tensor],
    prefix: str,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    with_bias: bool = True,
) -> None:
    """Store ``prefix.weight`` and, if wanted, ``prefix.bias`` (zeros when CT2 had none)."""
    out[f"{prefix}.weight"] = weight.contiguous()
    if with_bias:
        out[f"{prefix}.bias"] = (
            bias.contiguous() if bias is not None else torch.zeros(weight.shape[0])
        )


def _put_layer_norm(out: dict[str, torch.Tensor], prefix: str, model: Ct2Model, scope: str) -> None:
    """``scope/{gamma,beta}`` -> ``prefix.{weight,bias}``, each ``[d_model]``."""
    out[f"{prefix}.weight"] = model.float(f"{scope}/gamma")
    out[f"{prefix}.bias"] = model.float(f"{scope}/beta")


def _put_fused(
    out: dict[str, torch.Tensor],
    prefixes: list[str],
    model: Ct2Model,
    scope: str,
) -> None:
    """Split a fused linear ``[n * d, d]`` (rows stacked q, k, v) into ``n`` projections.

    HF's ``k_proj`` has no bias: CT2 stores zeros there, and any non-zero key bias would only add
    a per-query constant to the attention logits, which softmax ignores, so it is dropped.
    """
    weight, bias = _linear(model, scope)
    weights = weight.chunk(len(prefixes), dim=0)
    biases = bias.chunk(len(prefixes), dim=0) if bias is not None else [None] * len(prefixes)
    for prefix, w, b in zip(prefixes, weights, biases, strict=True):
        _put_linear(out, prefix, w, b, with_bias=not prefix.endswith("k_proj"))


def _put_ffn(out: dict[str, torch.Tensor], hf: str, model: Ct2Model, ct2: str) -> None:
    """``ffn/linear_0|1`` -> ``fc1|fc2`` and ``ffn/layer_norm`` -> ``final_layer_norm``."""
    _put_linear(out, f"{hf}.fc1", *_linear(model, f"{ct2}/ffn/linear_0"))
    _put_linear(out, f"{hf}.fc2", *_linear(model, f"{ct2}/ffn/linear_1"))
    _put_layer_norm(out, f"{hf}.final_layer_norm", model, f"{ct2}/ffn/layer_norm")


def _put_self_attention(out: dict[str, torch.Tensor], hf: str, model: Ct2Model, ct2: str) -> None:
    """``self_attention/linear_0`` ``[3d, d]`` -> q,k,v; ``linear_1`` -> ``out_proj``."""
    qkv = [f"{hf}.self_attn.{p}_proj" for p in ("q", "k", "v")]
    _put_fused(out, qkv, model, f"{ct2}/self_attention/linear_0")
    _put_linear(out, f"{hf}.self_attn.out_proj", *_linear(model, f"{ct2}/self_attention/linear_1"))
    _put_layer_norm(out, f"{hf}.self_attn_layer_norm", model, f"{ct2}/self_attention/layer_norm")


def _put_cross_attention(out: dict[str, torch.Tensor], hf: str, model: Ct2Model, ct2: str) -> None:
    """``attention/linear_0`` -> q, ``linear_1`` ``[2d, d]`` -> k,v, ``linear_2`` -> out."""
    _put_linear(out, f"{hf}.encoder_attn.q_proj", *_linear(model, f"{ct2}/attention/linear_0"))
    kv = [f"{hf}.encoder_attn.{p}_proj" for p in ("k", "v")]
    _put_fused(out, kv, model, f"{ct2}/attention/linear_1")
    _put_linear(out, f"{hf}.encoder_attn.out_proj", *_linear(model, f"{ct2}/attention/linear_2"))
    _put_layer_norm(out, f"{hf}.encoder_attn_layer_norm", model, f"{ct2}/attention/layer_norm")


def count_layers(model: Ct2Model, stack: str) -> int:
    """Number of ``{stack}/layer_N/`` blocks (``stack`` is "encoder" or "decoder")."""
    pattern = re.compile(rf"^{stack}/layer_(\d+)/")
    found = {int(m.group(1)) for name in model.variables if (m := pattern.match(name))}
    found |= {int(m.group(1)) for name in model.aliases if (m := pattern.match(name))}
    return max(found) + 1 if found else 0


def _common(out: dict[str, torch.Tensor], hf: str, model: Ct2Model, ct2: str) -> None:
    """Positions ``[max_positions, d_model]`` and the final layer norm of one stack."""
    out[f"{hf}.embed_positions.weight"] = model.float(f"{ct2}/position_encodings/encodings")
    _put_layer_norm(out, f"{hf}.layer_norm", model, f"{ct2}/layer_norm")


def _encoder_state(model: Ct2Model) -> dict[str, torch.Tensor]:
    """``model.encoder.*`` tensors. Conv weights are stored as torch's ``[out, in, 3]``."""
    out: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        _put_linear(out, f"model.encoder.{conv}", *_linear(model, f"encoder/{conv}"))
    _common(out, "model.encoder", model, "encoder")
    for i in range(count_layers(model, "encoder")):
        hf, ct2 = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        _put_self_attention(out, hf, model, ct2)
        _put_ffn(out, hf, model, ct2)
    return out


def _decoder_state(model: Ct2Model) -> dict[str, torch.Tensor]:
    """``model.decoder.*`` tensors plus ``proj_out.weight`` ``[vocab, d_model]``."""
    out: dict[str, torch.Tensor] = {}
    out["model.decoder.embed_tokens.weight"] = model.float("decoder/embeddings/weight")
    _common(out, "model.decoder", model, "decoder")
    for i in range(count_layers(model, "decoder")):
        hf, ct2 = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        _put_self_attention(out, hf, model, ct2)
        _put_cross_attention(out, hf, model, ct2)
        _put_ffn(out, hf, model, ct2)
    if model.get("decoder/projection/weight") is None:  # tied without an alias record
        out["proj_out.weight"] = out["model.decoder.embed_tokens.weight"]
    else:
        out["proj_out.weight"] = model.float("decoder/projection/weight")
    return out


def ct2_to_hf_state_dict(model: Ct2Model) -> dict[str, torch.Tensor]:
    """All float32 tensors of ``WhisperForConditionalGeneration``, keyed by HF names."""
    if model.spec != "WhisperSpec":
        raise AsrtuneError(f"not a Whisper model: model.bin holds a {model.spec or 'unnamed'} spec")
    if model.revision > MAX_WHISPER_REVISION:
        raise AsrtuneError(f"unsupported WhisperSpec revision {model.revision}")
    if not count_layers(model, "encoder") or not count_layers(model, "decoder"):
        raise AsrtuneError("model.bin has no encoder/decoder layers; is it a complete model?")
    return {**_encoder_state(model), **_decoder_state(model)}


# --------------------------------------------------------------------------- config


def build_whisper_config(model: Ct2Model, state: dict[str, torch.Tensor]) -> WhisperConfig:
    """A ``WhisperConfig`` from tensor shapes; heads come from ``*/num_heads`` (else d // 64)."""
    vocab_size, d_model = state["model.decoder.embed_tokens.weight"].shape
    enc_heads = model.scalar("encoder/num_heads") or d_model // 64
    dec_heads = model.scalar("decoder/num_heads") or d_model // 64
    tied = torch.equal(state["proj_out.weight"], state["model.decoder.embed_tokens.weight"])
    return WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(state["model.encoder.conv1.weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=count_layers(model, "encoder"),
        decoder_layers=count_layers(model, "decoder"),
        encoder_attention_heads=int(enc_heads),
        decoder_attention_heads=int(dec_heads),
        encoder_ffn_dim=int(state["model.encoder.layers.0.fc1.weight"].shape[0]),
        decoder_ffn_dim=int(state["model.decoder.layers.0.fc1.weight"].shape[0]),
        max_source_positions=int(state["model.encoder.embed_positions.weight"].shape[0]),
        max_target_positions=int(state["model.decoder.embed_positions.weight"].shape[0]),
        tie_word_embeddings=tied,
    )


def _check_state_dict(config: WhisperConfig, state: dict[str, torch.Tensor]) -> None:
    """Compare names and shapes with a (meta-device) HF model built from ``config``."""
    with torch.device("meta"):
        reference = WhisperForConditionalGeneration(config).state_dict()
    missing = sorted(set(reference) - set(state))
    extra = sorted(set(state) - set(reference))
    if missing or extra:
        raise AsrtuneError(f"CT2 -> HF mapping mismatch: missing {missing[:3]}, extra {extra[:3]}")
    for name, tensor in reference.items():
        if tuple(tensor.shape) != tuple(state[name].shape):
            raise AsrtuneError(
                f"{name}: shape {tuple(state[name].shape)} != expected {tuple(tensor.shape)}"
            )


def _read_json(path: Path) -> dict:
    """CT2's ``config.json`` (suppress_ids, suppress_ids_begin, lang_ids, alignment_heads)."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AsrtuneError(f"{path} is not valid JSON: {exc}") from exc


# --------------------------------------------------------------------------- tokenizer


def _read_vocabulary(src: Path) -> list[str] | None:
    """CT2's token list from ``vocabulary.json`` or ``vocabulary.txt`` (one token a line)."""
    if (src / "vocabulary.json").is_file():
        return json.loads((src / "vocabulary.json").read_text(encoding="utf-8"))
    if (src / "vocabulary.txt").is_file():
        lines = (src / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
        return lines[:-1] if lines and lines[-1] == "" else lines
    return None


def _no_tokenizer_error(src: Path) -> AsrtuneError:
    """vocabulary.txt/json alone cannot rebuild Whisper's byte-level BPE (no merges)."""
    has_vocabulary = any((src / n).is_file() for n in ("vocabulary.txt", "vocabulary.json"))
    hint = " (a vocabulary file alone lacks the BPE merges)" if has_vocabulary else ""
    return AsrtuneError(
        f"{src} has no tokenizer.json{hint}; copy tokenizer.json from the original model"
    )


def load_tokenizer(src: Path, vocab_size: int) -> WhisperTokenizerFast:
    """``WhisperTokenizerFast`` from ``src/tokenizer.json``, completed to ``vocab_size`` tokens.

    Timestamp tokens (``<|0.00|>`` ...) missing from older tokenizer.json files are appended as
    plain added tokens, taken from CT2's vocabulary when present, so ids line up with the model.
    """
    tokenizer_file = src / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise _no_tokenizer_error(src)
    vocabulary = _read_vocabulary(src)
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(tokenizer_file),
        unk_token=EOT,
        bos_token=EOT,
        eos_token=EOT,
        pad_token=EOT,
    )
    _check_vocabulary(tokenizer, vocabulary, vocab_size)
    _complete_tokenizer(tokenizer, vocabulary, vocab_size)
    return tokenizer


def _check_vocabulary(
    tokenizer: WhisperTokenizerFast, vocabulary: list[str] | None, vocab_size: int
) -> None:
    """Fail when tokenizer.json, CT2's vocabulary and the embedding size disagree."""
    if len(tokenizer) > vocab_size:
        raise AsrtuneError(f"tokenizer.json has {len(tokenizer)} tokens, the model {vocab_size}")
    if vocabulary is None:
        return
    if len(vocabulary) != vocab_size:
        raise AsrtuneError(f"CT2 vocabulary has {len(vocabulary)} tokens, the model {vocab_size}")
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    for index, (ours, theirs) in enumerate(zip(tokens, vocabulary, strict=False)):
        if ours != theirs:
            raise AsrtuneError(
                f"tokenizer.json and CT2 vocabulary differ at id {index}: {ours!r} vs {theirs!r}"
            )


def _complete_tokenizer(
    tokenizer: WhisperTokenizerFast, vocabulary: list[str] | None, vocab_size: int
) -> None:
    """Append the ids ``len(tokenizer) .. vocab_size - 1`` (timestamps) as added tokens."""
    start = len(tokenizer)
    if start == vocab_size:
        return
    if vocabulary is not None:
        names = vocabulary[start:vocab_size]
    else:  # same names as ctranslate2's converter generates
        names = ["<|%.2f|>" % (i * 0.02) for i in range(vocab_size - start)]
    tokenizer.add_tokens([AddedToken(n, special=False, normalized=False) for n in names])
    if len(tokenizer) != vocab_size:
        raise AsrtuneError(f"could not extend the tokenizer to {vocab_size} tokens")


def token_id(tokenizer: WhisperTokenizerFast, *tokens: str) -> int:
    """The id of the first of ``tokens`` the tokenizer knows; AsrtuneError if none."""
    for token in tokens:
        index = tokenizer.convert_tokens_to_ids(token)
        if index is not None and (index != tokenizer.unk_token_id or token == EOT):
            return int(index)
    raise AsrtuneError(f"tokenizer.json lacks the Whisper token {tokens[0]}")


def _encode(tokenizer: WhisperTokenizerFast, text: str) -> list[int]:
    """Token ids of ``text`` without the ``<|startoftranscript|>...`` template."""
    return tokenizer.encode(text, add_special_tokens=False)


def standard_suppress_tokens(tokenizer: WhisperTokenizerFast) -> list[int]:
    """Whisper's default ``suppress_tokens``: openai-whisper's non-speech symbols + task tokens."""
    symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    symbols += ["<<", ">>", "<<<", ">>>", "--", "---", "-(", "-[", "('", '("', "((", "))"]
    symbols += ["(((", ")))", "[[", "]]", "{{", "}}", "♪♪", "♪♪♪"]
    miscellaneous = set("♩♪♫♬♭♮♯")

    def encode(text: str) -> list[int]:
        return _encode(tokenizer, text)

    result = {encode(" -")[0], encode(" '")[0]}
    for symbol in symbols + sorted(miscellaneous):
        for tokens in (encode(symbol), encode(" " + symbol)):
            if len(tokens) == 1 or symbol in miscellaneous:
                result.add(tokens[0])
    specials = ["<|translate|>", "<|transcribe|>", SOT, "<|startofprev|>", "<|startoflm|>"]
    result |= {token_id(tokenizer, token) for token in specials}
    result.add(token_id(tokenizer, "<|nospeech|>", "<|nocaptions|>"))
    return sorted(result)


# --------------------------------------------------------------------------- generation config


def build_generation_config(
    config: WhisperConfig, tokenizer: WhisperTokenizerFast, ct2_config: dict
) -> GenerationConfig:
    """Whisper generation settings: special ids, suppression lists, languages and tasks."""
    eot = token_id(tokenizer, EOT)
    suppress = ct2_config.get("suppress_ids") or standard_suppress_tokens(tokenizer)
    begin = ct2_config.get("suppress_ids_begin") or [_encode(tokenizer, " ")[0], eot]
    generation = GenerationConfig(
        decoder_start_token_id=token_id(tokenizer, SOT),
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        no_timestamps_token_id=token_id(tokenizer, "<|notimestamps|>"),
        prev_sot_token_id=token_id(tokenizer, "<|startofprev|>"),
        suppress_tokens=[int(i) for i in suppress],
        begin_suppress_tokens=[int(i) for i in begin],
        max_length=config.max_target_positions,
        max_initial_timestamp_index=50,
        is_multilingual=config.vocab_size >= MULTILINGUAL_MIN_VOCAB,
        return_timestamps=False,
    )
    if ct2_config.get("alignment_heads"):
        generation.alignment_heads = [[int(a), int(b)] for a, b in ct2_config["alignment_heads"]]
    if generation.is_multilingual:
        generation.lang_to_id = language_tokens(tokenizer)
        generation.task_to_id = {
            "transcribe": token_id(tokenizer, "<|transcribe|>"),
            "translate": token_id(tokenizer, "<|translate|>"),
        }
    return generation


def language_tokens(tokenizer: WhisperTokenizerFast) -> dict[str, int]:
    """``{"<|en|>": id, ...}``: tokens strictly between ``<|startoftranscript|>`` and
    ``<|translate|>``."""
    first = token_id(tokenizer, SOT) + 1
    last = token_id(tokenizer, "<|translate|>")
    tokens = tokenizer.convert_ids_to_tokens(list(range(first, last)))
    return {t: first + i for i, t in enumerate(tokens) if re.fullmatch(r"<\|[a-z_]+\|>", t)}


def _feature_extractor(config: WhisperConfig) -> WhisperFeatureExtractor:
    """80/128-mel extractor; window length follows ``max_source_positions`` when integral."""
    extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    samples = config.max_source_positions * 2 * extractor.hop_length
    if samples % extractor.sampling_rate == 0:
        extractor = WhisperFeatureExtractor(
            feature_size=config.num_mel_bins, chunk_length=samples // extractor.sampling_rate
        )
    return extractor


# --------------------------------------------------------------------------- entry point


def _check_paths(src: Path, dst: Path) -> None:
    """User-facing checks on the CT2 folder (and the output path) before anything is read."""
    if not src.exists():
        raise AsrtuneError(f"CTranslate2 model folder not found: {src}")
    if not src.is_dir():
        raise AsrtuneError(f"expected a CTranslate2 model folder, got a file: {src}")
    if not (src / "model.bin").is_file():
        raise AsrtuneError(f"{src} has no model.bin; is it a CTranslate2 model folder?")
    if not (src / "tokenizer.json").is_file():
        raise _no_tokenizer_error(src)
    if dst.resolve() == src.resolve():
        raise AsrtuneError("the output folder must differ from the CTranslate2 folder")


def _save_weights(
    state: dict[str, torch.Tensor], config: WhisperConfig, dst: Path, dtype: torch.dtype
) -> None:
    """``model.safetensors`` (tied ``proj_out`` left out, as transformers does) + config.json."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in state.items():
        if config.tie_word_embeddings and name == "proj_out.weight":
            continue
        tensor = tensor.to(dtype).contiguous()
        if tensor.data_ptr() in seen:  # CT2 aliases share storage; safetensors refuses that
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        tensors[name] = tensor
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    config.dtype = dtype
    config.save_pretrained(dst)


def import_ct2(src: str | Path, dst: str | Path, *, dtype: torch.dtype = torch.float32) -> Path:
    """Convert a CTranslate2 / faster-whisper Whisper folder into a transformers checkpoint.

    Args:
        src: folder with ``model.bin``, ``config.json`` and ``tokenizer.json``
            (``vocabulary.txt``/``.json`` is used to cross-check and complete the tokenizer).
        dst: output folder (created); receives ``model.safetensors``, ``config.json``,
            ``generation_config.json``, the tokenizer files and ``preprocessor_config.json``.
        dtype: dtype of the saved weights; float32 (default) keeps CT2's values exactly.

    Returns:
        ``dst`` as a Path, loadable by ``WhisperForConditionalGeneration.from_pretrained`` and
        ``WhisperProcessor.from_pretrained``.

    Raises:
        AsrtuneError: missing folder/model.bin/tokenizer.json, a non-Whisper spec, an unsupported
            binary version, dtype or revision, or inconsistent files.
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    _check_paths(src, dst)
    model = read_ct2_model(src / "model.bin")
    state = ct2_to_hf_state_dict(model)
    config = build_whisper_config(model, state)
    _check_state_dict(config, state)
    tokenizer = load_tokenizer(src, config.vocab_size)
    ct2_config = _read_json(src / "config.json")
    generation = build_generation_config(config, tokenizer, ct2_config)
    config.decoder_start_token_id = generation.decoder_start_token_id
    config.bos_token_id = config.eos_token_id = config.pad_token_id = generation.eos_token_id
    config.suppress_tokens = generation.suppress_tokens
    config.begin_suppress_tokens = generation.begin_suppress_tokens

    dst.mkdir(parents=True, exist_ok=True)
    _save_weights(state, config, dst, dtype)
    generation.save_pretrained(dst)
    processor = WhisperProcessor(feature_extractor=_feature_extractor(config), tokenizer=tokenizer)
    processor.save_pretrained(dst)
    return dst
