"""Every kind of data source, turned into the same :class:`~asrtune.data.manifest.Row`.

A source is named by one string (the ``--train_manifest`` / ``--eval_manifest`` / ``--mix``
values and ``asrtune data check SOURCE``):

=================================  ==========================================================
``path/to/rows.jsonl|.csv|.tsv``   a manifest
``path/to/folder``                 an audio folder: ``metadata.csv``/``.jsonl``/``.tsv``
                                   (the audiofolder convention, ``file_name`` column) or
                                   ``clip.wav`` + ``clip.txt`` side by side
``hf:NAME[:CONFIG][@SPLIT]``       a Hugging Face Hub dataset (or a local dataset folder)
``granary:LANG_CORPUS[@SPLIT]``    an NVIDIA Granary manifest joined to a local audio root
=================================  ==========================================================

Hub audio stays encoded (``Audio(decode=False)``) and is decoded by soundfile, so no
torchcodec is needed. Every record becomes a row through one parser,
:func:`~asrtune.data.manifest.record_to_row` (a Hub dataset's detected columns narrow its
aliases). Streaming Hub and Granary sources become ``datasets.IterableDataset`` of records,
each with the function that makes a row of it; a streamed manifest is a
:class:`ManifestStream` of its rows and bad lines themselves, exactly those reading it gives.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from asrtune.data.manifest import (
    AUDIO_KEYS,
    LANGUAGE_KEYS,
    TEXT_KEYS,
    BadRow,
    Columns,
    Manifest,
    Row,
    manifest_items,
    read_manifest,
    record_to_row,
    with_language,
)
from asrtune.errors import AsrtuneError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aiff", ".aif")
METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.tsv")
GRANARY_REPO = "nvidia/Granary"
GRANARY_CORPORA = {
    "voxpopuli": "VoxPopuli (facebook/voxpopuli)",
    "ytc": "YouTube-Commons",
    "yodas": "YODAS (espnet/yodas-granary carries this part with its audio)",
    "librilight": "LibriLight",
}


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source string; ``weight`` is its share when several sources are mixed."""

    kind: str  # "manifest", "folder", "hub" or "granary"
    name: str
    config: str | None = None
    split: str | None = None
    weight: float = 1.0

    def label(self) -> str:
        extra = (f":{self.config}" if self.config else "") + (
            f"@{self.split}" if self.split else ""
        )
        return (
            f"{self.name}{extra}"
            if self.kind in ("manifest", "folder")
            else (f"{self.kind}:{self.name}{extra}")
        )


@dataclass(frozen=True)
class HubOptions:
    """How to read Hub / Granary sources (the ``--audio_column`` ... flags)."""

    audio_column: str | None = None
    text_column: str | None = None
    streaming: bool = False
    granary_audio_root: str | None = None
    granary_repo: str = GRANARY_REPO
    token: bool | str | None = None


def _split_weight(text: str) -> tuple[str, float]:
    head, sep, tail = text.rpartition("=")
    if sep and tail:
        try:
            weight = float(tail)
        except ValueError:
            return text, 1.0
        if weight <= 0:
            raise AsrtuneError(f"mixing weight must be > 0 in {text!r}")
        return head, weight
    return text, 1.0


def parse_source(text: str) -> SourceSpec:
    """``'hf:mozilla/cv:de@train=0.3'`` → SourceSpec('hub', 'mozilla/cv', 'de', 'train', 0.3)."""
    text, weight = _split_weight(text.strip())
    for prefix, kind in (("hf:", "hub"), ("granary:", "granary")):
        if text.startswith(prefix):
            body, _, split = text[len(prefix) :].partition("@")
            name, _, config = body.partition(":") if kind == "hub" else (body, "", "")
            if not name:
                raise AsrtuneError(f"source {text!r} names no dataset")
            return SourceSpec(kind, name, config or None, split or None, weight)
    kind = "folder" if Path(text).expanduser().is_dir() else "manifest"
    return SourceSpec(kind, text, None, None, weight)


# ----- audio folders -------------------------------------------------------------------


def read_audio_folder(folder: str | Path) -> Manifest:
    """Rows of a folder: from its metadata file, or from ``x.wav`` + ``x.txt`` pairs."""
    folder = Path(folder).expanduser()
    for name in METADATA_FILES:
        if (folder / name).is_file():
            return read_manifest(folder / name)
    rows, bad = [], []
    audio_files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not audio_files:
        raise AsrtuneError(f"{folder}: no metadata file and no audio files")
    for number, path in enumerate(audio_files, start=1):
        transcript = path.with_suffix(".txt")
        if not transcript.is_file():
            bad.append(BadRow(number, str(path), "no transcript: missing " + transcript.name))
            continue
        text = transcript.read_text(encoding="utf-8", errors="replace").strip()
        rel = path.relative_to(folder).with_suffix("")
        rows.append(Row(id=str(rel), audio_path=str(path), text=text, line=number))
    return Manifest(folder, rows, bad)


# ----- Hub datasets --------------------------------------------------------------------


def _feature_is_audio(feature: Any) -> bool:
    return type(feature).__name__ == "Audio"


def detect_columns(features: Any, options: HubOptions) -> Columns:
    """The audio, text and language columns: given ones first, else found by type/name."""
    names = list(features or {})
    audio = (
        options.audio_column
        or next((n for n in names if _feature_is_audio(features[n])), None)
        or next((n for n in AUDIO_KEYS if n in names), None)
    )
    text = options.text_column or next((n for n in TEXT_KEYS if n in names), None)
    language = next((n for n in LANGUAGE_KEYS if n in names), None)
    for what, column, flag in (("audio", audio, "--audio_column"), ("text", text, "--text_column")):
        if column is None or column not in names:
            raise AsrtuneError(f"no {what} column found among {', '.join(names)}: pass {flag}")
    return Columns((str(audio),), (str(text),), (language,) if language else ())


def load_hub_dataset(spec: SourceSpec, options: HubOptions) -> Any:
    """``datasets.load_dataset`` for a Hub id or local dataset folder, audio kept encoded."""
    from datasets import Audio, load_dataset

    try:
        dataset = load_dataset(
            spec.name,
            spec.config,
            split=spec.split or "train",
            streaming=options.streaming,
            token=options.token,
        )
    except Exception as exc:  # datasets raises many types: not found, offline, bad config
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AsrtuneError(f"cannot load dataset {spec.label()}: {message}") from exc
    for name, feature in (dataset.features or {}).items():
        if _feature_is_audio(feature):
            dataset = dataset.cast_column(name, Audio(decode=False))
    return dataset


def _local_base(spec: SourceSpec) -> Path | None:
    path = Path(spec.name).expanduser()
    return path.resolve() if path.is_dir() else None


def read_hub_rows(spec: SourceSpec, options: HubOptions) -> Manifest:
    dataset = load_hub_dataset(spec, replace(options, streaming=False))
    columns = detect_columns(dataset.features, options)
    rows, bad = [], []
    for index, record in enumerate(dataset, start=1):
        item = record_to_row(record, index, _local_base(spec), columns)
        (bad if isinstance(item, BadRow) else rows).append(item)
    return Manifest(Path(spec.name), rows, bad)


# ----- NVIDIA Granary -------------------------------------------------------------------


def granary_language_and_corpus(config: str) -> tuple[str, str]:
    """``'de_voxpopuli'`` → ``('de', 'voxpopuli')``."""
    language, _, corpus = config.partition("_")
    if not language or corpus not in GRANARY_CORPORA:
        raise AsrtuneError(
            f"Granary config {config!r} is not LANG_CORPUS with corpus in "
            f"{', '.join(GRANARY_CORPORA)} (e.g. de_voxpopuli)"
        )
    return language, corpus


def _granary_spec(spec: SourceSpec, options: HubOptions) -> tuple[SourceSpec, Path, str, str]:
    language, corpus = granary_language_and_corpus(spec.name)
    if not options.granary_audio_root:
        raise AsrtuneError(
            f"Granary holds manifests only; its {spec.name} audio comes from "
            f"{GRANARY_CORPORA[corpus]}: download it and pass --granary_audio_root"
        )
    root = Path(options.granary_audio_root).expanduser()
    hub = SourceSpec("hub", options.granary_repo, spec.name, spec.split or "asr")
    return hub, root, language, corpus


def read_granary_rows(spec: SourceSpec, options: HubOptions) -> Manifest:
    hub, root, language, corpus = _granary_spec(spec, options)
    dataset = load_hub_dataset(hub, replace(options, streaming=False, audio_column=None))
    columns = detect_columns(dataset.features, replace(options, audio_column="audio_filepath"))
    rows, bad = [], []
    for index, record in enumerate(dataset, start=1):
        item = with_language(record_to_row(record, index, root, columns), language)
        if isinstance(item, Row) and not Path(item.audio_path).is_file():
            item = BadRow(
                index,
                item.audio_path,
                f"audio file not found (Granary {spec.name} audio is from "
                f"{GRANARY_CORPORA[corpus]})",
            )
        (bad if isinstance(item, BadRow) else rows).append(item)
    if not rows and bad:
        raise AsrtuneError(
            f"none of the {len(bad)} Granary {spec.name} audio files is under {root} "
            f"(first: {bad[0].audio_path}); the audio comes from {GRANARY_CORPORA[corpus]}"
        )
    return Manifest(Path(spec.name), rows, bad)


# ----- one entry point ------------------------------------------------------------------


def read_source(
    spec: SourceSpec | str | Path, options: HubOptions | None = None, language: str | None = None
) -> Manifest:
    """All rows of a finite source (bad ones separated, nothing dropped); ``language``
    (``--language``) fills the rows that name none: the one place it is filled."""
    spec = spec if isinstance(spec, SourceSpec) else parse_source(str(spec))
    options = options or HubOptions()
    readers: dict[str, Callable[[], Manifest]] = {
        "manifest": lambda: read_manifest(spec.name),
        "folder": lambda: read_audio_folder(spec.name),
        "hub": lambda: read_hub_rows(spec, options),
        "granary": lambda: read_granary_rows(spec, options),
    }
    manifest = readers[spec.kind]()
    if not language:
        return manifest
    return replace(manifest, rows=[with_language(row, language) for row in manifest.rows])


def stream_source(
    spec: SourceSpec, options: HubOptions, language: str | None = None
) -> tuple[Any, Callable[..., Any]]:
    """A ``datasets.IterableDataset`` of records and the function that makes rows of them
    (``to_row(record, index)``, ``index`` the 1-based position in the stream); ``language``
    fills the rows that name none, as in :func:`read_source`."""
    records, to_row = _stream_records(spec, options)

    def to_row_with_language(record: dict[str, Any], index: int) -> Row | BadRow:
        return with_language(to_row(record, index), language)

    return records, to_row_with_language if language else to_row


def _stream_records(spec: SourceSpec, options: HubOptions) -> tuple[Any, Callable[..., Any]]:
    if spec.kind == "manifest":
        return _stream_manifest(spec.name)
    if spec.kind == "hub":
        dataset = load_hub_dataset(spec, replace(options, streaming=True))
        base, language = _local_base(spec), None
    elif spec.kind == "granary":
        hub, base, language, _ = _granary_spec(spec, options)
        dataset = load_hub_dataset(hub, replace(options, streaming=True))
        options = replace(options, audio_column="audio_filepath")
    else:
        raise AsrtuneError(f"cannot stream an audio folder ({spec.name}); drop --streaming")
    columns = detect_columns(dataset.features, options) if dataset.features else None

    def to_row(record: dict[str, Any], index: int) -> Row | BadRow:
        cols = columns or detect_columns({k: None for k in record}, options)
        return with_language(record_to_row(record, index, base, cols), language)

    return dataset, to_row


def _stream_manifest(path: str) -> tuple[ManifestStream, Callable[[Row | BadRow, int], Any]]:
    """A manifest as a stream of its rows and bad lines themselves (no records to parse:
    ``to_row`` hands each on as it is)."""
    manifest_items(path)  # a missing file or an unknown format fails now
    return ManifestStream(path), _as_it_is


def _as_it_is(item: Row | BadRow, index: int) -> Row | BadRow:
    """``to_row`` of a :class:`ManifestStream`: its items are rows already (``index`` is
    unused: an item keeps its manifest line)."""
    return item


@dataclass
class ManifestStream:
    """A manifest read lazily as :func:`~asrtune.data.manifest.manifest_items` (so lines and
    ``#k`` id suffixes are those of a read, whatever the shuffling after), with the parts
    of ``datasets.IterableDataset`` streaming training uses: :meth:`shuffle` (a seeded
    buffer of ``buffer_size`` items, reshuffled for each epoch), :meth:`set_epoch`, and one
    shard (``num_shards``)."""

    path: str
    seed: int | None = None
    buffer_size: int = 0
    epoch: int = 0
    num_shards: int = 1

    def shuffle(self, seed: int, buffer_size: int) -> ManifestStream:
        """A copy that shuffles (``buffer_size`` < 2: none)."""
        return replace(self, seed=seed, buffer_size=buffer_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Row | BadRow]:
        items = manifest_items(self.path)
        if self.seed is None or self.buffer_size < 2:
            yield from items
            return
        rng = random.Random(f"{self.seed}:{self.epoch}")
        buffer: list[Row | BadRow] = []
        for item in items:
            if len(buffer) < self.buffer_size:
                buffer.append(item)
                continue
            pick = rng.randrange(len(buffer))
            yield buffer[pick]
            buffer[pick] = item
        rng.shuffle(buffer)
        yield from buffer


def mix_rows(sources: Iterable[tuple[list[Row], float]], seed: int = 0) -> list[Row]:
    """Rows of several sources in proportion to their weights.

    The total stays the sum of the sources' sizes; a source whose share is larger than
    itself is repeated (reshuffled each pass), a smaller one is subsampled. Ids get a
    ``~k`` suffix on repeats so reports stay unambiguous.
    """
    sources = [(rows, weight) for rows, weight in sources if rows]
    total = sum(len(rows) for rows, _ in sources)
    weight_sum = sum(weight for _, weight in sources)
    rng = random.Random(seed)
    mixed: list[Row] = []
    for rows, weight in sources:
        target = round(total * weight / weight_sum)
        taken: list[Row] = []
        repeat = 0
        while len(taken) < target:
            order = rows[:]
            rng.shuffle(order)
            suffix = f"~{repeat}" if repeat else ""
            taken += [replace(r, id=r.id + suffix) for r in order[: target - len(taken)]]
            repeat += 1
        mixed += taken
    rng.shuffle(mixed)
    return mixed
