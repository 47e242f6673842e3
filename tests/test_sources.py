"""Data sources: spec strings, audio folders, Hub datasets (offline, local files through the
same load_dataset path), Granary, mixing, push round trip, streaming training."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrtune.cli import main
from asrtune.data.audio import load_row_audio
from asrtune.data.manifest import Row
from asrtune.data.push import build_dataset_folder
from asrtune.data.sources import (
    HubOptions,
    SourceSpec,
    mix_rows,
    parse_source,
    read_source,
    stream_source,
)
from asrtune.errors import AsrtuneError
from tests.conftest import tone, write_dataset


def test_parse_source(tmp_path: Path) -> None:
    assert parse_source("hf:mozilla/cv:de@test=0.3") == SourceSpec(
        "hub", "mozilla/cv", "de", "test", 0.3
    )
    assert parse_source("granary:de_voxpopuli") == SourceSpec("granary", "de_voxpopuli")
    assert parse_source(str(tmp_path)).kind == "folder"
    assert parse_source("rows.jsonl=2").weight == 2.0
    with pytest.raises(AsrtuneError):
        parse_source("rows.jsonl=-1")


def test_audio_folder_metadata_csv_and_txt_pairs(tmp_path: Path) -> None:
    meta = tmp_path / "meta"
    meta.mkdir()
    sf.write(meta / "a.wav", tone(1, 300), 16000)
    (meta / "metadata.csv").write_text("file_name,transcription\na.wav,hello there\n")
    rows = read_source(str(meta)).rows
    assert [(Path(r.audio_path).name, r.text) for r in rows] == [("a.wav", "hello there")]
    pairs = tmp_path / "pairs"
    (pairs / "sub").mkdir(parents=True)
    sf.write(pairs / "sub" / "x.flac", tone(1, 300), 16000)
    (pairs / "sub" / "x.txt").write_text("good morning\n")
    sf.write(pairs / "y.wav", tone(1, 300), 16000)
    parsed = read_source(str(pairs))
    assert [(r.id, r.text) for r in parsed.rows] == [("sub/x", "good morning")]
    assert parsed.bad_rows[0].reason == "no transcript: missing y.txt"


def test_push_folder_loads_back_as_a_hub_dataset(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "data", 5)
    (tmp_path / "data" / "manifest.jsonl").rename(tmp_path / "data" / "train.jsonl")
    write_dataset(tmp_path / "data_eval", 2)
    (tmp_path / "data_eval" / "manifest.jsonl").rename(tmp_path / "data" / "eval.jsonl")
    (tmp_path / "data" / "eval.jsonl").write_text(
        (tmp_path / "data" / "eval.jsonl").read_text().replace("audio/", "../data_eval/audio/")
    )
    assert not manifest.exists()
    repo = build_dataset_folder(tmp_path / "data", "me/speech", tmp_path / "repo")
    card = (repo / "README.md").read_text()
    assert "path: data/train-*" in card and "path: data/validation-*" in card
    originals = read_source(str(tmp_path / "data" / "train.jsonl")).rows
    loaded = read_source(f"hf:{repo}").rows  # no extra flags: columns found by type/name
    assert [(r.id, r.text, r.language) for r in loaded] == [
        (r.id, r.text, r.language) for r in originals
    ]
    assert np.array_equal(load_row_audio(loaded[0]), load_row_audio(originals[0]))
    assert len(read_source(f"hf:{repo}@validation").rows) == 2


def test_hub_dataset_from_jsonl_with_custom_columns(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    sf.write(folder / "a.wav", tone(1, 300), 16000)
    (folder / "train.jsonl").write_text(json.dumps({"clip": "a.wav", "words": "hi"}) + "\n")
    with pytest.raises(AsrtuneError, match="--audio_column"):
        read_source(f"hf:{folder}")
    rows = read_source(f"hf:{folder}", HubOptions(audio_column="clip", text_column="words")).rows
    assert rows[0].text == "hi" and Path(rows[0].audio_path) == folder / "a.wav"
    assert len(load_row_audio(rows[0])) == 16000


def test_missing_hub_dataset_is_one_line() -> None:
    with pytest.raises(AsrtuneError, match="cannot load dataset"):
        read_source("hf:/nonexistent/dataset-folder")


def _granary_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A local copy of Granary's layout: configs LANG_CORPUS, jsonl files per split."""
    repo = tmp_path / "Granary"
    (repo / "de" / "voxpopuli").mkdir(parents=True)
    rows = [
        {"audio_filepath": f"clips/{i}.wav", "duration": 1.0, "text": f"hallo {i}"}
        for i in range(3)
    ]
    (repo / "de" / "voxpopuli" / "de_asr.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n"
    )
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: de_voxpopuli\n  data_files:\n"
        "  - split: asr\n    path: de/voxpopuli/de_asr.jsonl\n---\n"
    )
    audio = tmp_path / "voxpopuli_audio"
    (audio / "clips").mkdir(parents=True)
    for i in range(2):  # clip 2 is missing
        sf.write(audio / "clips" / f"{i}.wav", tone(1, 300), 16000)
    return repo, audio


def test_granary_joins_manifest_rows_to_the_audio_root(tmp_path: Path) -> None:
    repo, audio = _granary_repo(tmp_path)
    options = HubOptions(granary_audio_root=str(audio), granary_repo=str(repo))
    parsed = read_source("granary:de_voxpopuli", options)
    assert [(r.text, r.language) for r in parsed.rows] == [("hallo 0", "de"), ("hallo 1", "de")]
    assert "VoxPopuli" in parsed.bad_rows[0].reason
    with pytest.raises(AsrtuneError, match="--granary_audio_root"):
        read_source("granary:de_voxpopuli", HubOptions(granary_repo=str(repo)))
    with pytest.raises(AsrtuneError, match="none of the 3"):
        read_source(
            "granary:de_voxpopuli",
            HubOptions(granary_audio_root=str(tmp_path), granary_repo=str(repo)),
        )
    with pytest.raises(AsrtuneError, match="LANG_CORPUS"):
        read_source("granary:de_podcasts", options)


def test_mix_rows_follows_weights() -> None:
    own = [Row(f"o{i}", "a.wav", "x") for i in range(10)]
    general = [Row(f"g{i}", "b.wav", "y") for i in range(90)]
    mixed = mix_rows([(own, 0.7), (general, 0.3)], seed=1)
    counts = Counter(r.id[0] for r in mixed)
    assert counts == {"o": 70, "g": 30} and len({r.id for r in mixed}) == 100


def test_stream_source_yields_rows(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "d", 3)
    records, to_row = stream_source(parse_source(str(manifest)), HubOptions(streaming=True))
    rows = [to_row(r, i) for i, r in enumerate(records, start=1)]
    assert [Path(r.audio_path).name for r in rows] == ["clip0.wav", "clip1.wav", "clip2.wav"]


def test_train_on_a_pushed_dataset_with_mixing_and_streaming(
    tiny_whisper: Path, tmp_path: Path
) -> None:
    repo = build_dataset_folder(write_dataset(tmp_path / "d", 6), "me/x", tmp_path / "repo")
    other = write_dataset(tmp_path / "other", 4)
    common = [
        "--model",
        str(tiny_whisper),
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "1e-3",
    ]
    out = tmp_path / "mixed"
    assert (
        main(
            [
                "train",
                *common,
                "--dataset",
                str(repo),
                "--mix",
                f"{other}=0.5",
                "--output_dir",
                str(out),
                "--num_train_epochs",
                "1",
            ]
        )
        == 0
    )
    assert json.loads((out / "train_results.json").read_text())["utterances"] == 10
    out = tmp_path / "stream"
    assert (
        main(
            [
                "train",
                *common,
                "--train_manifest",
                f"hf:{repo}",
                "--streaming",
                "--max_steps",
                "3",
                "--output_dir",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "train_results.json").read_text())
    assert results["streaming"] is True and results["global_step"] == 3
    assert (out / "model.safetensors").is_file()
    assert (
        main(
            [
                "train",
                *common,
                "--train_manifest",
                str(other),
                "--streaming",
                "--output_dir",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )  # no --max_steps


def test_data_push_dry_run_and_check_the_result(tmp_path: Path, capsys) -> None:
    manifest = write_dataset(tmp_path / "d", 3)
    out = tmp_path / "upload"
    assert (
        main(["data", "push", str(manifest), "me/speech", "--dry-run", "--output", str(out)]) == 0
    )
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert main(["data", "check", f"hf:{out}", "--output", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["num_rows"] == 3 and report["num_invalid"] == 0
    assert main(["data", "push", str(manifest), "me/speech", "--dry-run"]) == 2
    assert "--output" in capsys.readouterr().err


def test_data_push_without_a_token_is_one_line(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import get_token

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    if get_token():
        pytest.skip("a saved Hugging Face login exists on this machine")
    manifest = write_dataset(tmp_path / "d", 2)
    assert main(["data", "push", str(manifest), "me/speech"]) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "Traceback" not in err
