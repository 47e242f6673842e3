"""``asrtune data push``: a manifest's audio + texts → a Hub dataset in the standard layout.

The folder written (and uploaded in one commit) is what ``load_dataset(REPO)`` reads with no
extra arguments: ``data/<split>-0000k-of-0000n.parquet`` shards whose ``audio`` column is an
``Audio`` feature holding the original encoded files (no re-encoding, no torchcodec), plus a
README.md dataset card. So ``asrtune train --train_manifest hf:REPO`` loads it back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from asrtune.data.manifest import Row
from asrtune.data.sources import read_source
from asrtune.errors import AsrtuneError
from asrtune.hub import hub_upload

SPLIT_FILES = {
    "manifest": "train",
    "train": "train",
    "eval": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
}
ROWS_PER_SHARD = 1000


def find_split_manifests(source: Path) -> dict[str, Path]:
    """``{split: manifest}`` of a folder (manifest/train/eval/test .jsonl/.csv) or one file."""
    if source.is_file():
        return {"train": source}
    found: dict[str, Path] = {}
    for path in sorted(source.iterdir()):
        split = SPLIT_FILES.get(path.stem)
        if split and path.suffix in (".jsonl", ".csv", ".tsv") and split not in found:
            found[split] = path
    if not found:
        raise AsrtuneError(f"{source}: no manifest.jsonl, train.jsonl, eval.jsonl or test.jsonl")
    return found


def _features_metadata() -> bytes:
    features = {
        "id": {"dtype": "string", "_type": "Value"},
        "audio": {"_type": "Audio"},
        "text": {"dtype": "string", "_type": "Value"},
        "language": {"dtype": "string", "_type": "Value"},
        "duration": {"dtype": "float64", "_type": "Value"},
    }
    return json.dumps({"info": {"features": features}}).encode()


def write_shards(rows: list[Row], split: str, data_dir: Path) -> list[Path]:
    """Parquet shards of ``rows`` (audio bytes read from their files) under ``data_dir``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = max(1, -(-len(rows) // ROWS_PER_SHARD))
    audio_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    written = []
    bar = tqdm(total=len(rows), desc=f"packing {split}", unit="row")
    for k in range(shards):
        chunk = rows[k * ROWS_PER_SHARD : (k + 1) * ROWS_PER_SHARD]
        audio = [
            {
                "bytes": r.audio_bytes or Path(r.audio_path).read_bytes(),
                "path": Path(r.audio_path).name,
            }
            for r in chunk
        ]
        table = pa.table(
            {
                "id": [r.id for r in chunk],
                "audio": pa.array(audio, type=audio_type),
                "text": [r.text for r in chunk],
                "language": [r.language for r in chunk],
                "duration": [r.duration for r in chunk],
            }
        ).replace_schema_metadata({b"huggingface": _features_metadata()})
        path = data_dir / f"{split}-{k:05d}-of-{shards:05d}.parquet"
        pq.write_table(table, path)
        written.append(path)
        bar.update(len(chunk))
    bar.close()
    return written


def dataset_card(repo: str, counts: dict[str, int], languages: list[str]) -> str:
    configs = "\n".join(f"  - split: {split}\n    path: data/{split}-*" for split in counts)
    langs = "".join(f"\n- {lang}" for lang in languages) or "\n- multilingual"
    table = "\n".join(f"| {split} | {n} |" for split, n in counts.items())
    return f"""---
language:{langs}
task_categories:
- automatic-speech-recognition
configs:
- config_name: default
  data_files:
{configs}
---

# {repo}

Speech and transcripts for fine-tuning speech recognition, made with
[asrtune](https://pypi.org/project/asrtune/).

| split | rows |
| --- | --- |
{table}

Columns: `id`, `audio` (the original encoded files), `text`, `language`, `duration` (s).

```python
from datasets import load_dataset
dataset = load_dataset("{repo}")
```

Fine-tune on it: `asrtune train --model openai/whisper-small --train_manifest hf:{repo} ...`
"""


def build_dataset_folder(source: str | Path, repo: str, out_dir: str | Path) -> Path:
    """Write the folder that ``push_dataset`` uploads; invalid rows stop it (with a list)."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    counts: dict[str, int] = {}
    languages: set[str] = set()
    for split, manifest in find_split_manifests(Path(source).expanduser()).items():
        parsed = read_source(str(manifest))
        missing = [r for r in parsed.rows if not r.audio_bytes and not Path(r.audio_path).is_file()]
        if parsed.bad_rows or missing:
            first = (
                parsed.bad_rows[0].reason if parsed.bad_rows else f"missing {missing[0].audio_path}"
            )
            raise AsrtuneError(
                f"{manifest}: {len(parsed.bad_rows) + len(missing)} invalid row(s), first: "
                f"{first}; run 'asrtune data check {manifest}'"
            )
        write_shards(parsed.rows, split, out / "data")
        counts[split] = len(parsed.rows)
        languages.update(r.language for r in parsed.rows if r.language)
    (out / "README.md").write_text(dataset_card(repo, counts, sorted(languages)))
    return out


def push_dataset(
    source: str | Path, repo: str, private: bool = False, token: str | None = None
) -> str:
    """Build the folder in a temporary place and upload it in one commit; returns its URL.

    ``token`` None uses HF_TOKEN or the saved login; failures are one-line AsrtuneErrors
    that never show the token.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_dataset_folder(source, repo, Path(tmp) / "dataset")
        files = {
            path.relative_to(folder).as_posix(): path
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
        return hub_upload(
            files,
            repo,
            repo_type="dataset",
            private=private,
            commit_message="Upload dataset with asrtune",
            token=token,
        )
