"""One pass over a dataset → a report of broken rows, rows over a model's limits, and warnings.

Every audio file is decoded fully, once (rows naming the same file share the result), in
blocks, so memory stays flat for long files. Three outcomes per row:

* **invalid** (``problems``): the data is broken and the row cannot be used: missing file,
  unreadable / corrupt / truncated audio, zero samples, silence (peak below
  :data:`SILENCE_PEAK`), NaN/Inf samples, empty text, and the manifest lines that never became
  rows (malformed JSON, non-UTF-8, no audio column: the ``bad_rows`` of
  :func:`~asrtune.data.manifest.read_manifest`). With a model, also a language the model
  does not know (or none for a multilingual model).
* **over the limits** (``over_limits``, only with a model): valid, but not for this model:
  longer than it takes (Whisper: 30 s of audio, 448 label tokens), or text its vocabulary
  lacks characters of (labels with its unknown token, unless ``allow_unknown_tokens``);
  training leaves them out.
* **warnings** (the row is kept): duplicate audio (the same decoded samples as an earlier
  row), text too long for its audio (more than :data:`MAX_CHARS_PER_SECOND`), a text the
  model's tokenizer does not reproduce, unknown tokens kept by ``allow_unknown_tokens``,
  an MP3 that decodes shorter than its header says.

Which rows are invalid or over the limits is training's admission rule
(:func:`asrtune.data.admission.admit`), so the check and training say the same.

The valid rows come back with their measured ``duration``, so ``asrtune train`` can use them
without probing the files again.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from asrtune.data.admission import (
    EMPTY_TEXT,
    UNKNOWN_TOKENS,
    Admitted,
    Refusal,
    RowFit,
    admit,
)
from asrtune.data.cache import file_cache
from asrtune.data.manifest import BadRow, Row

# Peak amplitude (full scale = 1.0) below which a file counts as silent: about -80 dBFS,
# i.e. at most 3 steps of 16-bit PCM. Digital silence and bare dither fall below it; any
# recorded speech, however quiet, is far above.
SILENCE_PEAK = 1e-4
# Characters of text (spaces included) per second of audio above which the text is
# suspiciously long for its audio: read speech runs at ~12-15 per second and fast speech
# rarely passes 20, so 25 usually means a clipped recording or a transcript of the wrong
# file.
MAX_CHARS_PER_SECOND = 25.0
# An MP3's frame count in its header is an estimate; shorter decodes beyond this share are
# reported (as a warning, since a valid VBR file without a Xing header can also miss it).
MP3_SHORTFALL = 0.05
NONSPEECH_NOTE = "no text: a non-speech probe, scored apart from WER"
_BLOCK_FRAMES = 1 << 18  # frames decoded at a time (~1 MB per channel as float32)
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # data sizes streaming writers leave in the header


@dataclass(frozen=True)
class AudioCheck:
    """What one full decode of a file found; ``problem`` makes its rows invalid."""

    seconds: float = 0.0
    digest: str = ""
    problem: str | None = None
    warning: str | None = None
    silent: bool = False  # the problem is only that the audio is silent


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of :func:`validate_rows`.

    ``rows`` are the valid rows (over-limit ones included) with measured durations;
    ``within_limits`` are those a model can train on (all of ``rows`` without a model).
    ``problems``, ``over_limits`` and ``warnings`` name each row by its 1-based manifest line.
    """

    source: str
    num_rows: int
    rows: list[Row]
    within_limits: list[Row]
    problems: list[BadRow]
    over_limits: list[BadRow]
    warnings: list[BadRow]

    @property
    def num_valid(self) -> int:
        return len(self.rows)

    @property
    def num_invalid(self) -> int:
        return len(self.problems)

    @property
    def ok(self) -> bool:
        """True when no row is invalid (over-limit rows and warnings are allowed)."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "num_rows": self.num_rows,
            "num_valid": self.num_valid,
            "num_invalid": self.num_invalid,
            "problems": [p.as_dict() for p in self.problems],
            "over_limits": [p.as_dict() for p in self.over_limits],
            "warnings": [w.as_dict() for w in self.warnings],
        }

    def save(self, path: str | Path) -> Path:
        """Write :meth:`as_dict` as indented JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n")
        return path

    def summary(self) -> str:
        name = f"{self.source}: " if self.source else ""
        return (
            f"{name}{self.num_rows} rows, {self.num_valid} valid, {self.num_invalid} invalid, "
            f"{len(self.over_limits)} over the model's limits, {len(self.warnings)} warnings"
        )


# ----- one file -------------------------------------------------------------------------


def _wav_shortfall(handle: BinaryIO) -> tuple[int, int] | None:
    """(declared, present) data bytes when a RIFF/WAVE header claims more than the file
    holds, else None. libsndfile silently clamps such files, so only the header tells."""
    head = handle.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    size = handle.seek(0, io.SEEK_END)
    position = 12
    while position + 8 <= size:
        handle.seek(position)
        chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
        if chunk_id == b"data":
            present = size - position - 8
            if chunk_size in _WAV_UNKNOWN_SIZES or chunk_size <= present:
                return None
            return chunk_size, present
        position += 8 + chunk_size + (chunk_size & 1)
    return None


def _decode_error(exc: Exception) -> str:
    message = getattr(exc, "error_string", None) or str(exc).strip() or type(exc).__name__
    return f"unreadable audio: {message.splitlines()[0]}"


def _scan(source: str | io.BytesIO) -> AudioCheck:
    """Decode ``source`` fully, block by block: length, peak, finiteness, content hash."""
    digest = hashlib.blake2b(digest_size=16)
    peak, finite, frames = 0.0, True, 0
    with sf.SoundFile(source) as audio:
        rate, declared, fmt = audio.samplerate, audio.frames, audio.format
        digest.update(f"{rate}:{audio.channels}:".encode())
        while True:
            block = audio.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
            if not len(block):
                break
            frames += len(block)
            digest.update(block.tobytes())
            if finite and not np.isfinite(block).all():
                finite = False
            if finite:
                peak = max(peak, float(np.abs(block).max()))
    seconds = frames / rate
    if frames == 0:
        return AudioCheck(problem="audio has zero samples")
    if not finite:
        return AudioCheck(seconds, problem="audio has NaN or infinite samples")
    if peak < SILENCE_PEAK:
        problem = f"silent audio: peak {peak:.1e} < {SILENCE_PEAK:g}"
        return AudioCheck(seconds, digest.hexdigest(), problem, silent=True)
    check = AudioCheck(seconds, digest.hexdigest())
    if frames < declared:
        message = f"decoded {seconds:.2f} s of the {declared / rate:.2f} s its header declares"
        if fmt != "MP3":
            return replace(check, problem=f"truncated audio: {message}")
        if frames < (1 - MP3_SHORTFALL) * declared:
            return replace(check, warning=f"possibly truncated MP3: {message}")
    return check


CHECK_VERSION = "2"  # bump when what check_audio finds changes (2: silent, digest of silence)


def check_audio(path: str | Path, data: bytes | None = None) -> AudioCheck:
    """Decode one file (or its encoded ``data``) fully and say what is wrong with it.

    Results are cached (:mod:`asrtune.data.cache`): files by path, size and modification
    time, encoded ``data`` by its digest. Checking the same data again costs no decoding.
    """
    if data is None and not Path(path).is_file():
        return AudioCheck(problem="audio file not found")
    cache = file_cache("audio_checks", CHECK_VERSION)
    key = None
    if cache is not None:
        key = cache.content_key(data) if data is not None else cache.key(path)
    if key is not None and (hit := cache.get(key)) is not None:
        return AudioCheck(**hit)
    check = _check_audio(path, data)
    if key is not None:
        cache.put(key, asdict(check))
    return check


def _check_audio(path: str | Path, data: bytes | None) -> AudioCheck:
    try:
        with io.BytesIO(data) if data is not None else open(path, "rb") as handle:
            shortfall = _wav_shortfall(handle)
        if shortfall is not None:
            declared, present = shortfall
            return AudioCheck(
                problem=f"truncated audio: WAV header declares {declared} data bytes, "
                f"the file holds {present}"
            )
        return _scan(io.BytesIO(data) if data is not None else str(path))
    except Exception as exc:  # libsndfile and the OS raise many types for broken files
        return AudioCheck(problem=_decode_error(exc))


# ----- text and model checks ------------------------------------------------------------


def tokenizer_warning(tokenizer: Any, text: str) -> str | None:
    """Why ``tokenizer`` cannot reproduce ``text`` (decode(encode(text)) differs, or unknown
    tokens), or None when it can."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    back = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    unk = getattr(tokenizer, "unk_token_id", None)
    # an unk id that doubles as end-of-text (Whisper) cannot come from plain text
    has_unk = unk is not None and unk != getattr(tokenizer, "eos_token_id", None) and unk in ids
    if back.strip() == text.strip() and not has_unk:
        return None
    missing = "".join(sorted(set(text) - set(back)))
    if missing:
        return f"the tokenizer cannot represent {missing!r}"
    if has_unk:
        return "the text encodes to unknown tokens"
    return f"the tokenizer changes the text to {back.strip()[:80]!r}"


def _chars_per_second_warning(text: str, seconds: float) -> str | None:
    rate = len(text) / seconds
    if rate <= MAX_CHARS_PER_SECOND:
        return None
    return (
        f"text too long for its audio: {len(text)} characters in {seconds:.2f} s "
        f"({rate:.0f}/s > {MAX_CHARS_PER_SECOND:g}/s)"
    )


def _issue(row: Row, reason: str) -> BadRow:
    return BadRow(row.line or 0, row.audio_path, reason)


def _cache_key(row: Row) -> str | None:
    """Rows naming the same file share one decode; rows carrying bytes are decoded each."""
    return None if row.audio_bytes is not None else str(Path(row.audio_path).resolve())


def _decoded(row: Row, checks: dict[str, AudioCheck]) -> AudioCheck:
    """The row's :func:`check_audio`, shared by the rows (keys in ``checks``) naming its file."""
    key = _cache_key(row)
    check = checks.get(key) if key else None
    if check is None:
        check = check_audio(row.audio_path, row.audio_bytes)
        if key:
            checks[key] = check
    return check


def _left_for_unknown_tokens(admitted: Admitted | Refusal) -> bool:
    """Whether the admission rule already said the text holds unknown tokens."""
    said = admitted.reason if isinstance(admitted, Refusal) else " ".join(admitted.notes)
    return UNKNOWN_TOKENS in said


# ----- the pass -------------------------------------------------------------------------


def validate_rows(
    rows: Iterable[Row],
    bad_rows: Iterable[BadRow] = (),
    fit: RowFit | None = None,
    progress: bool = True,
    *,
    source: str = "",
    nonspeech_ok: bool = False,
) -> ValidationReport:
    """Check every row (decoding each audio file fully, once) → :class:`ValidationReport`.

    ``bad_rows`` are lines the reader already rejected; they count as invalid. Each row is
    judged by training's admission rule (:func:`asrtune.data.admission.admit`); ``fit``
    (a model's, :class:`asrtune.models.fit.ModelFit`) adds its model checks (language,
    unknown tokens unless it allows them, limits with timestamp tokens counted as
    training's default counts them) and a warning where the tokenizer does not reproduce
    a text.

    A row with empty text is invalid, unless ``nonspeech_ok`` (an evaluation set): there it
    is a non-speech probe (silence, noise), valid with a warning, and may be silent.
    """
    rows = list(rows)
    problems = list(bad_rows)
    num_bad = len(problems)
    valid: list[Row] = []
    within: list[Row] = []
    over: list[BadRow] = []
    warnings: list[BadRow] = []
    checks: dict[str, AudioCheck] = {}
    first_line: dict[str, int] = {}  # content digest → line of the first row with it
    tokenizer = fit.tokenizer if fit is not None else None
    bar = tqdm(rows, desc=f"checking {source or 'rows'}", unit="row", disable=not progress)
    for row in bar:
        text = (row.text or "").strip()
        if not text and not nonspeech_ok:
            problems.append(_issue(row, EMPTY_TEXT))  # refused before any decoding
            continue
        check = _decoded(row, checks)
        row = replace(row, duration=check.seconds)
        problem = None if not text and check.silent else check.problem
        admitted = admit(row, fit, audio_problem=problem, nonspeech_ok=nonspeech_ok)
        if isinstance(admitted, Refusal) and admitted.invalid:
            problems.append(_issue(row, admitted.reason))
            continue
        valid.append(row)
        if not text:
            within.append(row)
            warnings.append(_issue(row, NONSPEECH_NOTE))
            continue
        notes = [check.warning, _chars_per_second_warning(text, check.seconds)]
        if check.digest in first_line:
            notes.append(f"duplicate audio: same content as line {first_line[check.digest]}")
        else:
            first_line[check.digest] = row.line or 0
        if isinstance(admitted, Refusal):
            over.append(_issue(row, admitted.reason))
        else:
            within.append(row)
            notes += admitted.notes
        if tokenizer is not None and not _left_for_unknown_tokens(admitted):
            notes.append(tokenizer_warning(tokenizer, text))
        warnings += [_issue(row, note) for note in notes if note]
    return ValidationReport(
        source=source,
        num_rows=len(rows) + num_bad,
        rows=valid,
        within_limits=within,
        problems=sorted(problems, key=lambda b: b.line),
        over_limits=over,
        warnings=warnings,
    )
