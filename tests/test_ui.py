"""The web UI's logic without a browser: project folder, phrase lists, file-name sanitizing,
run folders and the training worker (a real process), rendering, publishing without a
stored token, and the ``asrtune ui`` command."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrtune.errors import AsrtuneError
from tests.conftest import tone, write_dataset

pytest.importorskip("gradio")

from asrtune.models import FAMILIES
from asrtune.publish.upload import scrub
from asrtune.ui import actions, app, jobs, render
from asrtune.ui.hub import upload
from asrtune.ui.models import (
    LOCAL,
    SIZES,
    ModelCache,
    describe_model,
    resolve_model,
)
from asrtune.ui.phrases import LANGUAGES, bundled_phrases, parse_phrases
from asrtune.ui.project import Project, sanitize_filename
from asrtune.ui.result import Result

TOKEN = "hf_unitTestTokenThatMustNotBeStored42"


def wav(folder: Path, name: str, seconds: float = 1.0, freq: float = 300) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    sf.write(path, tone(seconds, freq, rate=22050), 22050)  # the project resamples to 16 kHz
    return path


def started(result: Result) -> tuple[str, str | None]:
    """A start's (message as the page shows it, run id or None)."""
    return result.text, result.details.get("run_id")


def form(model: str, **changes: object) -> dict:
    values = {**actions.FORM_DEFAULTS, "model": model, "report_to": "none", "logging_steps": 1}
    return {**values, "language": "en", **changes}


# ----- phrases and names ----------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_every_bundled_list_has_twenty_distinct_phrases(code: str) -> None:
    phrases = bundled_phrases(code)
    assert len(phrases) >= 20
    assert len(set(phrases)) == len(phrases)
    assert all(p.strip() == p and not p.startswith("#") for p in phrases)


def test_parse_phrases_skips_comments_and_blank_lines() -> None:
    assert parse_phrases("# title\n\n  one  \ntwo\n#x\n") == ["one", "two"]
    assert bundled_phrases("xx") == []


@pytest.mark.parametrize(
    "name,expected",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\..\\evil clip.WAV", "evil_clip.wav"),
        ("clip é 1.wav", "clip_e_1.wav"),
        (".hidden.wav", "hidden.wav"),
        ("", "clip"),
        ("नमस्ते.wav", "clip.wav"),
        ("a;rm -rf $HOME.mp3", "a_rm_-rf_HOME.mp3"),
    ],
)
def test_uploaded_names_are_sanitized(name: str, expected: str) -> None:
    assert sanitize_filename(name) == expected


def test_sanitized_names_are_short_and_safe() -> None:
    name = sanitize_filename("x" * 300 + ".flac")
    assert len(name) <= 60 and name.endswith(".flac")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


# ----- the project folder ---------------------------------------------------------------


def test_clips_become_16k_wavs_in_a_standard_manifest(tmp_path: Path) -> None:
    from asrtune.data.manifest import read_manifest

    project = Project(tmp_path / "p")
    clip = wav(tmp_path / "up", "x.wav")
    row = project.add_clip(clip, "  hello   world ", "en", name="../../up/my clip.wav")
    assert row["id"] == "rec0001" and row["text"] == "hello world"
    assert row["audio_path"] == "audio/rec0001-my_clip.wav"
    samples, rate = sf.read(project.audio_file(row))
    assert rate == 16000 and samples.ndim == 1 and abs(len(samples) / rate - 1.0) < 0.01
    parsed = read_manifest(project.manifest_path)
    assert [r.text for r in parsed.rows] == ["hello world"] and not parsed.bad_rows
    assert Path(parsed.rows[0].audio_path).is_file()


def test_rows_are_edited_and_deleted_with_their_audio(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    first = project.add_clip(wav(tmp_path, "a.wav"), "one", "en")
    second = project.add_clip(wav(tmp_path, "b.wav", freq=500), "two", "en")
    assert second["id"] == "rec0002"
    project.update_text("rec0001", "one edited")
    project.delete_row("rec0002")
    assert [(r["id"], r["text"]) for r in project.rows()] == [("rec0001", "one edited")]
    assert not project.audio_file(second).exists() and project.audio_file(first).exists()
    # ids are not reused while the deleted row can come back
    third = project.add_clip(wav(tmp_path, "c.wav", freq=700), "three", "en")
    assert third["id"] == "rec0003"
    with pytest.raises(AsrtuneError, match="no row"):
        project.delete_row("rec0099")
    with pytest.raises(AsrtuneError, match="empty"):
        project.update_text("rec0001", "  ")


def test_uploads_find_their_transcripts(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    up = tmp_path / "up"
    a, b, c = (wav(up, f"{n}.wav", freq=200 + 100 * i) for i, n in enumerate("abc"))
    (up / "c.txt").write_text("from the sidecar\n")
    notes = up / "notes.pdf"
    notes.write_bytes(b"%PDF")
    added, problems = project.add_files(
        [str(a), str(b), str(c), str(up / "c.txt"), str(notes)],
        "b.wav\tnamed by file\nfirst plain line\nleft over line",
        "fr",
    )
    assert {r["audio_path"].split("-", 1)[1]: r["text"] for r in added} == {
        "a.wav": "first plain line",
        "b.wav": "named by file",
        "c.wav": "from the sidecar",
    }
    assert all(r["language"] == "fr" for r in added)
    assert problems == [
        "notes.pdf: not an audio file",
        "1 transcript line(s) matched no audio file",
    ]


def test_uploads_without_transcript_or_readable_audio_are_reported(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEjunk")
    added, problems = project.add_files([str(wav(tmp_path, "ok.wav")), str(broken)], "", "en")
    assert added == []
    assert problems[0] == "ok.wav: no transcript (add a line for it)"
    message = project.add_files([str(broken)], "text", "en")[1][0]
    assert message.startswith("cannot read audio broken.wav") and str(tmp_path) not in message


def test_a_partial_upload_is_reported_as_not_done(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    result = actions.add_uploads(project, [str(wav(tmp_path, "a.wav")), str(broken)], "one\ntwo")
    assert not result.ok and result.details["added"] == 1, result
    assert (
        result.message.startswith("Added 1 file(s); not added: ") and "broken.wav" in result.message
    )
    result = actions.add_uploads(project, [str(wav(tmp_path, "b.wav", freq=600))], "three")
    assert result.ok and result.text == "✓ Added 1 file(s)."


def test_a_clip_added_twice_is_kept_once(tmp_path: Path) -> None:
    """Retrying an upload (the first file added, the second rejected, both still in the
    box) must not add the first file again; a different file of the same name is new."""
    project = Project(tmp_path / "p")
    first, second = wav(tmp_path / "up", "a.wav"), wav(tmp_path / "up", "b.wav", freq=500)
    added, problems = project.add_files([str(first), str(second)], "hello", "en")
    assert len(added) == 1 and problems == ["b.wav: no transcript (add a line for it)"]
    added, problems = project.add_files([str(first), str(second)], "hello\nworld", "en")
    assert [r["text"] for r in added] == ["world"]
    assert problems == ["a.wav: already in the dataset as rec0001 (same audio)"]
    assert [r["text"] for r in project.rows()] == ["hello", "world"]
    assert len(list((project.root / "data" / "audio").iterdir())) == 2  # no orphan file
    other = wav(tmp_path / "elsewhere", "a.wav", freq=700)
    assert project.add_clip(other, "new", "en")["id"] == "rec0003"


def test_settings_survive_a_new_project_object(tmp_path: Path) -> None:
    Project(tmp_path / "p").update_settings(language="hi", phrase_index=3)
    settings = Project(tmp_path / "p").settings()
    assert settings["language"] == "hi" and settings["phrase_index"] == 3
    assert settings["data_source"] == "recordings"
    with pytest.raises(ValueError, match="unknown"):
        Project(tmp_path / "p").update_settings(hf_token="x")


def test_run_ids_from_the_browser_never_become_other_paths(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    run = project.new_run_dir()
    assert project.run_dir(run.name) == run and project.runs() == [run.name]
    assert project.new_run_dir().name.startswith(run.name)  # same second: suffixed
    for bad in ("../p", "..", "/etc", "", None, "20260101-000000/../../x"):
        assert project.run_dir(bad) is None


def test_phrase_navigation_skips_recorded_phrases(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    project.update_settings(phrase_source="custom", custom_phrases="alpha\nbeta\ngamma\n")
    html_text, phrase = actions.phrase_view(project)
    assert phrase == "alpha" and "Phrase 1 of 3 · 0 recorded" in html_text
    project.add_clip(wav(tmp_path, "b.wav"), "beta", "en")
    saved = actions.save_recording(project, str(wav(tmp_path, "a.wav", freq=600)), "alpha").text
    assert saved.startswith("✓")
    html_text, phrase = actions.phrase_view(project)
    assert phrase == "gamma" and "2 recorded" in html_text  # beta was recorded already
    assert actions.move_phrase(project, 1)[1] == "alpha"
    assert actions.save_recording(project, None, "x").text.startswith("✗")
    # a transcript fixed up before saving (case, Unicode form, spacing) still counts
    project.update_settings(custom_phrases="Café au lait\nalpha\n", phrase_index=0)
    typed = "cafe\u0301  AU lait"  # decomposed é, other case and spacing
    assert (
        actions.save_recording(project, str(wav(tmp_path, "c.wav", freq=800)), typed).text[0] == "✓"
    )
    assert "of 2 · 2 recorded" in actions.phrase_view(project)[0]


# ----- options and runs ------------------------------------------------------------------


def test_more_options_are_yaml_and_refuse_tokens_and_form_fields() -> None:
    assert jobs.parse_extra_options("warmup-steps: 0.2\nseed: 3") == {
        "warmup_steps": 0.2,
        "seed": 3,
    }
    assert jobs.parse_extra_options("  ") == {}
    for text, message in [
        ("hub_token: hf_x", "cannot be set"),
        ("output_dir: /tmp/x", "set by the form"),
        ("- a\n- b", "option: value"),
        ("a: [", "not YAML"),
    ]:
        with pytest.raises(AsrtuneError, match=message):
            jobs.parse_extra_options(text)


def test_train_options_follow_the_form(tmp_path: Path) -> None:
    full = jobs.train_options(form("m"), "t.jsonl", None, tmp_path)
    assert full["lora"] is False and "lora_r" not in full and "eval_manifest" not in full
    assert full["num_train_epochs"] == 3 and "learning_rate" not in full  # the default
    typed = jobs.train_options(form("m", learning_rate=5e-5), "t", None, tmp_path)
    assert typed["learning_rate"] == 5e-5
    lora = jobs.train_options(
        form("m", lora=True, lora_r=8, max_steps=5, extra="seed: 7"), "t", "e", tmp_path
    )
    assert (lora["lora_r"], lora["lora_alpha"], lora["max_steps"]) == (8, 64, 5)
    assert lora["eval_manifest"] == "e" and lora["seed"] == 7
    guarded = form("m", guard="general=g.jsonl\n\n accents=hf:x \n", max_guard_regression=0.02)
    options = jobs.train_options(guarded, "t", "e", tmp_path)
    assert options["guard"] == ["general=g.jsonl", "accents=hf:x"]
    assert options["max_guard_regression"] == 0.02
    assert "guard" not in full and "max_guard_regression" not in full


def test_form_defaults_are_asrtunes_defaults() -> None:
    from asrtune.config import TRAINING_DEFAULTS, train_job_from_kwargs

    job = train_job_from_kwargs(model="m", train_manifest="t.jsonl", output_dir="o")
    assert actions.FORM_DEFAULTS["learning_rate"] is None  # the method's and model's own
    for lora in (False, True):
        form_job = train_job_from_kwargs(
            **jobs.train_options(form("openai/whisper-small", lora=lora), "t", None, Path("o"))
        )
        plain = train_job_from_kwargs(
            model="openai/whisper-small", train_manifest="t", output_dir="o", lora=lora
        )
        assert form_job.training.learning_rate == plain.training.learning_rate
    assert actions.FORM_DEFAULTS["num_train_epochs"] == job.training.num_train_epochs
    assert actions.FORM_DEFAULTS["per_device_train_batch_size"] == 4
    assert actions.FORM_DEFAULTS["lora_r"] == job.model.lora_r == 32
    assert actions.FORM_DEFAULTS["lora_alpha"] == job.model.lora_alpha
    assert actions.FORM_DEFAULTS["report_to"] == TRAINING_DEFAULTS["report_to"]


def test_a_run_needs_data_and_a_valid_model(tmp_path: Path, tiny_whisper: Path) -> None:
    project = Project(tmp_path / "p")
    with pytest.raises(AsrtuneError, match="no recordings yet"):
        jobs.prepare_run(project, form(str(tiny_whisper)))
    project.add_clip(wav(tmp_path, "a.wav"), "hello", "en")
    with pytest.raises(AsrtuneError, match="unknown option"):
        jobs.prepare_run(project, form(str(tiny_whisper), extra="no_such_option: 1"))
    with pytest.raises(AsrtuneError, match="choose a model"):
        jobs.prepare_run(project, form(""))
    assert project.runs() == []  # failed preparations leave nothing behind
    message, run_id = started(
        actions.start_training(Project(tmp_path / "empty"), form(str(tiny_whisper)))
    )
    assert message.startswith("✗ no recordings") and run_id is None
    message, _ = started(actions.start_training(project, form("m", extra=f"hub_token: {TOKEN}")))
    assert "cannot be set from the UI" in message and TOKEN not in message
    assert not any(TOKEN.encode() in p.read_bytes() for p in project.root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"num_train_epochs": None}, "Epochs: type a number"),
        ({"num_train_epochs": -2}, "Epochs: more than 0, not -2"),
        ({"per_device_train_batch_size": 1.5}, "Batch size: a whole number"),
        ({"logging_steps": 0}, "Log every N steps: at least 1"),
        ({"learning_rate": float("nan")}, "Learning rate: nan is not a finite number"),
        ({"lora": True, "lora_r": None}, "LoRA r: type a number"),
        ({"eval_fraction": 0.9}, "Recordings held out for eval: at most 0.5"),
        ({"model": "../../../etc"}, "../../../etc: "),
        ({"model": "/etc/passwd"}, "model folder /etc/passwd: no such folder"),
        ({"model": "./no/such/model"}, "no such folder"),
    ],
)
def test_bad_form_values_are_refused_before_a_run_exists(
    tmp_path: Path, tiny_whisper: Path, changes: dict, expected: str
) -> None:
    project = Project(tmp_path / "p")
    project.add_clip(wav(tmp_path, "a.wav"), "hello", "en")
    values = {**form(str(tiny_whisper)), **changes}
    message, run_id = started(actions.start_training(project, values))
    assert message.startswith("✗") and expected in message and "\n" not in message, message
    assert run_id is None and project.runs() == []  # nothing started, nothing listed


def test_bad_sources_and_languages_are_refused_where_they_are_typed(
    tmp_path: Path, tiny_whisper: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.family_helpers import stay_offline

    stay_offline(monkeypatch)
    project = Project(tmp_path / "p")
    for source, expected in (
        ("../../../etc/passwd", "is not a manifest"),
        ("hf:nonsense/not-a-dataset", "cannot be reached"),
        (str(tmp_path / "missing.jsonl"), "no such manifest file"),
    ):
        message = actions.use_source(project, "source", source, "", "").text
        assert message.startswith("✗") and expected in message, message
    # a language the model does not know: refused for new rows and in the row editor
    assert "does not know" in actions.set_language(project, "klingon").message
    assert project.settings()["language"] == "en"
    assert actions.set_language(project, "fr").ok and project.settings()["language"] == "fr"
    project.add_clip(wav(tmp_path, "a.wav"), "hello", "fr")
    frame, _ = actions.rows_table(project)
    assert list(frame["language"]) == ["fr"]
    assert actions.save_row(project, "rec0001", "hello", "klingon").text.startswith("✗ rec0001")
    assert actions.save_row(project, "rec0001", "hello there", "de").text.startswith(
        "✓ rec0001 (de)"
    )
    assert [(r["text"], r["language"]) for r in project.rows()] == [("hello there", "de")]
    # a row saved in an unknown language before: the start names the row
    project.add_clip(wav(tmp_path, "b.wav", freq=500), "qapla", "klingon")
    project.update_settings(data_source="recordings")
    message, run_id = started(actions.start_training(project, form(str(tiny_whisper))))
    assert run_id is None and "row rec0002: Whisper does not know" in message, message


def test_one_recording_trains_without_eval(tmp_path: Path, tiny_whisper: Path) -> None:
    project = Project(tmp_path / "p")
    project.add_clip(wav(tmp_path, "a.wav"), "hello", "en")
    run_dir = jobs.prepare_run(project, form(str(tiny_whisper)))
    spec = json.loads((run_dir / "run.json").read_text())
    assert "eval_manifest" not in spec["options"] and spec["baseline"] is False
    assert "too few rows" in spec["description"]


def test_a_named_manifest_source_is_split(
    tmp_path: Path, tiny_whisper: Path, dataset: Path, monkeypatch: pytest.MonkeyPatch
):
    from datasets import config

    monkeypatch.setattr(config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    project = Project(tmp_path / "p")
    project.update_settings(data_source="source", train_source=str(dataset))
    run_dir = jobs.prepare_run(project, form(str(tiny_whisper), eval_fraction=0.25))
    spec = json.loads((run_dir / "run.json").read_text())
    assert spec["options"]["train_manifest"] == str(run_dir / "data" / "train.jsonl")
    assert "6 train / 2 eval" in spec["description"]
    project.update_settings(train_source="hf:someone/corpus", eval_source="hf:someone/corpus@dev")
    with pytest.raises(AsrtuneError, match="someone/corpus is not downloaded"):  # offline
        jobs.prepare_run(project, form(str(tiny_whisper)))
    (tmp_path / "datasets" / "someone___corpus").mkdir(parents=True)  # downloaded once
    other = jobs.prepare_run(project, form(str(tiny_whisper)))
    options = json.loads((other / "run.json").read_text())["options"]
    assert (options["train_manifest"], options["eval_manifest"]) == (
        "hf:someone/corpus",
        "hf:someone/corpus@dev",
    )


def test_log_keeps_the_last_state_of_progress_bars(tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_bytes(b"start\nbar 10%\rbar 50%\rbar 100%\n\xffend\n")
    assert jobs.read_log(tmp_path) == "start\nbar 100%\n\ufffdend"
    assert jobs.read_log(tmp_path / "missing") == ""


def test_a_vanished_worker_is_reported_failed(tmp_path: Path) -> None:
    from asrtune.ui.project import write_json_atomic

    write_json_atomic(
        tmp_path / "status.json", {"state": "running", "pid": 2**22 + 12345, "updated": 0}
    )
    status = jobs.read_status(tmp_path)
    assert status["state"] == "failed" and "ended unexpectedly" in status["error"]
    assert jobs.request_stop(tmp_path) == "the run is not running"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    """A real worker process: baseline, 2 epochs of the tiny Whisper (its WER ties, so the
    first epoch's checkpoint stays the best and is reloaded), final eval."""
    from asrtune.models.tiny import make_tiny_whisper

    root = tmp_path_factory.mktemp("ui-run")
    project = Project(root / "project")
    for i, text in enumerate(["turn on the light", "call the desk", "good morning"]):
        project.add_clip(wav(root / "clips", f"c{i}.wav", 1.2, 200 + 90 * i), text, "en")
    model = make_tiny_whisper(project.models_dir / "tiny-whisper")
    message, run_id = started(actions.start_training(project, form(str(model), num_train_epochs=2)))
    assert run_id, message
    status = jobs.wait_for(project.runs_dir / run_id, timeout=240)
    assert status["state"] == "done", jobs.read_log(project.runs_dir / run_id)
    return project, run_id


def test_the_worker_reports_progress_metrics_and_the_log(finished_run) -> None:
    project, run_id = finished_run
    run_dir = project.run_dir(run_id)
    status = jobs.read_status(run_dir)
    assert status["step"] == status["max_steps"] >= 1 and status["pid"] != os.getpid()
    assert status["baseline_wer"] is not None and status["final_wer"] is not None
    metrics = jobs.read_metrics(run_dir)
    assert metrics[0]["event"] == "baseline" and any("loss" in m for m in metrics)
    assert any("eval_wer" in m for m in metrics)
    log = jobs.read_log(run_dir)
    assert "baseline WER" in log and "trainable parameters" in log and "finished" in log
    for name in ("model.safetensors", "eval_results.json", "baseline_results.json"):
        assert (run_dir / "model" / name).is_file()
    view = actions.run_view(project, run_id)
    assert 'data-state="done"' in view["progress"] and len(view["loss"]) >= 1
    assert next(iter(view["evals"]["step"])) == "base model"
    label = actions.run_label(project, run_id)
    best_wer = min(m["eval_wer"] for m in metrics if "eval_wer" in m)
    assert label == f"{run_id} · tiny-whisper · full · done · best WER {render.percent(best_wer)}"
    assert actions.run_choices(project)[0] == (label, run_id)
    best = next(m for m in metrics if m.get("event") == "best_checkpoint")
    assert list(view["evals"]["step"])[-1] == f"final model (best: step {best['step']})"
    assert jobs.active_run(project) is None


def test_evaluate_counts_terms_and_queues_the_missed_ones_to_record(
    finished_run, tmp_path: Path
) -> None:
    project, run_id = finished_run
    cache = ModelCache()
    refused = actions.record_missed_terms(project, run_id)  # no report counted terms yet
    assert not refused.ok and "type your terms and press Evaluate" in refused.message
    terms = "turn on the light\ncall the desk\ngood morning\nKubernetes"
    table, _ = actions.evaluate_run(project, cache, run_id, "", terms)
    assert "**Your terms**" in table
    assert (
        "| term | occurrences | recognized (base) | recognized (fine-tuned) | heard as |" in table
    )
    report = json.loads((project.run_dir(run_id) / "model" / "eval_results.json").read_text())
    per_term = {t["term"]: t["occurrences"] for t in report["terms"]["per_term"]}
    assert per_term["Kubernetes"] == 0 and sum(per_term.values()) == 1  # one eval clip
    assert project.settings()["eval_terms"] == terms  # remembered for a reload
    missed = actions.missed_terms(report)  # what the tiny model did not say
    result = actions.record_missed_terms(project, run_id)
    assert result.ok, result.message
    settings = project.settings()
    if missed:  # the eval set's own sentence that holds the term is the phrase to record
        assert settings["phrase_source"] == "custom"
        assert result.details["added"] == missed  # each eval sentence is exactly its term
        assert actions.phrase_view(project)[1] == result.details["added"][0]
    assert "Kubernetes" not in settings["custom_phrases"]  # not heard: not missed
    assert actions.evaluate_run(project, cache, run_id, "", "a\na")[0].startswith("✗")
    # Try it: hotwords bias decoding (Whisper can); none is the plain transcription
    clip = str(wav(tmp_path, "try.wav"))
    plain = actions.transcribe_clip(project, cache, run_id, "finetuned", clip)[0]
    boosted = actions.transcribe_clip(project, cache, run_id, "finetuned", clip, "call the desk")
    assert boosted[1].startswith("✓ Transcribed"), boosted[1]
    assert actions.transcribe_clip(project, cache, run_id, "finetuned", clip, " ")[0] == plain


def test_the_term_table_lists_the_most_missed_first() -> None:
    def report(recognized: list[int]) -> dict:
        per_term = [
            {"term": t, "occurrences": 2, "recognized": r, "false_alarms": 0,
             "misrecognized_as": ["cooper nettys"] if r < 2 else []}
            for t, r in zip(("Grafana", "Kubernetes"), recognized, strict=True)
        ]  # fmt: skip
        found = sum(recognized)
        return {"terms": {"occurrences": 4, "recognized": found, "recall": found / 4,
                          "false_alarms": 1, "per_term": per_term}}  # fmt: skip

    table = render.term_table_markdown(report([2, 0]), report([2, 1]))
    assert table.splitlines()[0] == (
        "base model: recall **50.0%** (2/4), false alarms 1 · "
        "fine-tuned: recall **75.0%** (3/4), false alarms 1"
    )
    assert table.splitlines()[4] == "| Kubernetes | 2 | 0 | 1 | “cooper nettys” |"
    assert table.splitlines()[5] == "| Grafana | 2 | 2 | 2 | – |"
    assert render.term_table_markdown({"wer": 0.1}, None) == ""


def test_evaluate_try_and_publish_a_finished_run(finished_run, tmp_path: Path) -> None:
    project, run_id = finished_run
    cache = ModelCache()
    table, worst = actions.evaluation_view(project, run_id)
    assert "| fine-tuned |" in table and "base model" in table and 'class="utt"' in worst
    table, _ = actions.evaluate_run(project, cache, run_id, "")  # both reports exist: reused
    assert "fine-tuned" in table and len(cache) == 0
    other = project.run_dir(run_id) / "data" / "train.jsonl"
    table, _ = actions.evaluate_run(project, cache, run_id, str(other))
    assert "| fine-tuned |" in table and (project.run_dir(run_id) / "evaluations").is_dir()
    reloaded, _ = actions.evaluation_view(project, run_id)  # what a reload shows
    assert reloaded.count("| fine-tuned |") == 2 and f"**On `{other}`:**" in reloaded
    clip = str(wav(tmp_path, "try.wav"))
    text, info = actions.transcribe_clip(project, cache, run_id, "finetuned", clip)
    assert isinstance(text, str) and info.startswith("✓ Transcribed with run")
    assert actions.transcribe_clip(project, cache, run_id, "base", clip)[1].startswith("✓")
    assert actions.transcribe_clip(project, cache, None, "base", clip)[1].startswith("✗ no run")

    message = actions.publish_model(
        project, run_id, TOKEN, "someone/tiny", False, "auto", "someone/data", True
    ).text
    assert message.startswith("✓ Dry run"), message
    upload_dir = project.run_dir(run_id) / "upload"
    assert (upload_dir / "README.md").is_file() and (upload_dir / "model.safetensors").is_file()
    card = (upload_dir / "README.md").read_text()
    assert "base model (before fine-tuning)" in card
    # a dataset only dry-run (never uploaded) and the base's local path stay out of the card
    assert "someone/data" not in card and str(project.models_dir) not in card
    preview = actions.card_preview(project, run_id)  # what the Publish tab shows
    assert "| base model (before fine-tuning) |" in preview and "```python" in preview
    assert "<summary>Metadata</summary>" in preview and "model-index" in preview
    settings = Project(project.root).settings()  # the repositories survive a reload
    assert (settings["model_repo"], settings["dataset_repo"]) == ("someone/tiny", "someone/data")
    message = actions.publish_dataset(project, run_id, TOKEN, "someone/data", False, True).text
    assert message.startswith("✓ Dry run"), message
    assert list((project.run_dir(run_id) / "dataset-upload" / "data").glob("*.parquet"))
    message = actions.publish_demo(project, run_id, TOKEN, "", "", False).text
    assert message.startswith("✓ Demo app written"), message
    assert (project.run_dir(run_id) / "space" / "app.py").is_file()
    assert actions.publish_model(
        project, run_id, "", "someone/tiny", False, "auto", "", False
    ).text == ("✗ type a Hugging Face token with write access first")
    assert (
        "not a Hub repository"
        in actions.publish_model(project, run_id, TOKEN, "../bad", False, "auto", "", True).text
    )
    for path in project.root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_dry_run_demo_app_uploads_nothing_and_its_hint_runs_offline(
    finished_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shlex

    from tests.family_helpers import import_demo_app, stay_offline

    stay_offline(monkeypatch)
    project, run_id = finished_run
    message = actions.publish_demo(
        project, run_id, TOKEN, "me/tiny-whisper-test", "me/tiny-demo", False, True
    ).text
    assert "✗" not in message and "nothing was uploaded" in message, message
    assert Project(project.root).settings()["publish_dry_run"] is True  # back after a reload
    # the printed command: cd APP && MODEL_ID=FOLDER python app.py, with a model found here
    command = message.split("run it: `")[1].split("`")[0]
    words = shlex.split(command)
    app_dir, env = Path(words[1]), dict(w.split("=", 1) for w in words[3:] if "=" in w)
    assert words[-2:] == ["python", "app.py"] and "MODEL_ID" in env, command
    demo = import_demo_app(app_dir / "app.py", monkeypatch, env["MODEL_ID"])
    model, _ = demo.load(demo.MODEL_ID)  # the Hub is off: only a local model loads
    assert model is not None


@pytest.mark.parametrize("family", [name for name in FAMILIES if name != "whisper"])
def test_every_family_trains_evaluates_transcribes_and_publishes_from_the_ui(
    family: str, tmp_path: Path
) -> None:
    """The tiny-model button of each family, a run in the worker process, then the Evaluate,
    Try and Publish tabs' actions (Whisper's: the finished_run tests above)."""
    if family == "voxtral":
        pytest.importorskip("mistral_common")
    project = Project(tmp_path / "project")
    for i, text in enumerate(["turn on the light", "call the desk", "good morning"]):
        project.add_clip(wav(tmp_path / "clips", f"c{i}.wav", 1.2, 200 + 90 * i), text, "en")
    made = actions.make_tiny(project, family)
    model, message = made.details.get("folder"), made.text
    assert model and message.startswith("✓"), message
    message, run_id = started(actions.start_training(project, form(model, num_train_epochs=1)))
    assert run_id, message
    status = jobs.wait_for(project.runs_dir / run_id, timeout=240)
    assert status["state"] == "done", jobs.read_log(project.runs_dir / run_id)
    assert status["baseline_wer"] is not None and status["final_wer"] is not None
    cache = ModelCache()
    table, _ = actions.evaluation_view(project, run_id)
    assert "| fine-tuned |" in table and "base model" in table
    text, info = actions.transcribe_clip(
        project, cache, run_id, "finetuned", str(wav(tmp_path, "try.wav"))
    )
    assert isinstance(text, str) and info.startswith("✓ Transcribed with run"), info
    message = actions.publish_model(
        project, run_id, TOKEN, "someone/tiny", False, "auto", "", True
    ).text
    assert message.startswith("✓ Dry run"), message
    assert FAMILIES[family].publish_recipe().model_class in actions.card_preview(project, run_id)
    message = actions.publish_demo(project, run_id, TOKEN, "", "", False).text
    assert message.startswith("✓ Demo app written"), message


def test_stop_ends_training_after_the_current_step(tmp_path: Path, tiny_whisper: Path) -> None:
    project = Project(tmp_path / "p")
    project.add_clip(wav(tmp_path, "a.wav"), "hello there", "en")
    options = form(str(tiny_whisper), max_steps=5000, eval_fraction=0, baseline=False)
    message, run_id = started(actions.start_training(project, options))
    assert run_id, message
    run_dir = project.run_dir(run_id)
    refused = actions.start_training(project, options)
    assert not refused.ok and "still training" in refused.message
    assert refused.details["busy"] == run_id  # the page shows the run that trains
    deadline = time.time() + 120
    while jobs.read_status(run_dir).get("step", 0) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert "after the current step" in actions.stop_training(project, run_id).message
    status = jobs.wait_for(run_dir, timeout=120)
    assert status["state"] == "stopped" and status["step"] < 5000
    assert (run_dir / "model" / "model.safetensors").is_file()  # the model so far is kept


# ----- rendering ------------------------------------------------------------------------


def test_progress_bar_shows_state_step_and_eta() -> None:
    assert 'data-state="none"' in render.progress_html({})
    running = {
        "state": "running",
        "message": "training",
        "step": 5,
        "max_steps": 20,
        "epoch": 0.5,
        "num_train_epochs": 2,
        "train_started": 100.0,
        "eta_seconds": 75,
        "last_eval_wer": 0.25,
    }
    text = render.progress_html(running, now=130.0)
    assert "width:25.0%" in text and "step 5/20" in text and "epoch 0.50/2" in text
    assert "elapsed 0:30" in text and "ETA 1:15" in text and "eval WER 25.0%" in text
    failed = render.progress_html({"state": "failed", "error": "<boom>"})
    assert "&lt;boom&gt;" in failed and 'data-state="failed"' in failed
    assert render.duration(3725) == "1:02:05" and render.duration(None) == "–"


def test_metric_frames() -> None:
    metrics = [
        {"event": "baseline", "wer": 0.5, "cer": 0.25},
        {"step": 1, "loss": 2.123456789},
        {"step": 2, "epoch": 1.0, "eval_wer": 0.4, "eval_cer": 0.2},
        {"step": 2, "train_runtime": 1.0},
        {"step": 2, "epoch": 1.0, "eval_wer": 0.3, "eval_cer": 0.1},
    ]
    assert render.loss_frame(metrics).to_dict("records") == [{"step": 1, "loss": 2.1235}]
    evals = render.eval_frame(metrics)
    assert list(evals["step"]) == ["base model", "2", "final model"]
    assert list(evals["WER"]) == ["50.0%", "40.0%", "30.0%"]
    # 2 epochs, the best checkpoint (epoch 1) reloaded: the final row says which it is
    metrics = [
        {"step": 2, "epoch": 1.0, "eval_wer": 0.3, "eval_cer": 0.1},
        {"step": 4, "epoch": 2.0, "eval_wer": 0.5, "eval_cer": 0.2},
        {"step": 4, "train_runtime": 1.0},
        {"event": "best_checkpoint", "step": 2, "epoch": 1.0},
        {"step": 4, "epoch": 2.0, "eval_wer": 0.3, "eval_cer": 0.1},
    ]
    final = render.eval_frame(metrics).to_dict("records")[-1]
    assert (final["step"], final["epoch"]) == ("final model (best: step 2)", "1.00")
    # loops, words said on non-speech probes and each guard set with its change
    metrics = [
        {"event": "baseline", "wer": 0.5, "cer": 0.25, "loops": 1, "nonspeech": {"words": 9}},
        {"step": 2, "epoch": 1.0, "eval_wer": 0.3, "eval_cer": 0.1, "eval_loops": 0,
         "eval_nonspeech_words": 0, "eval_guard_general_wer": 0.12,
         "eval_guard_general_change": 0.02},
    ]  # fmt: skip
    rows = render.eval_frame(metrics).to_dict("records")
    assert rows[0]["words on non-speech"] == 9 and rows[0]["guard general"] == "–"
    assert (rows[1]["in a loop"], rows[1]["words on non-speech"]) == (0, 0)
    assert rows[1]["guard general"] == "12.0% (+2.0)"


def test_word_diff_marks_substitutions_insertions_and_deletions() -> None:
    diff = render.word_diff_html("turn on the light <now>", "turn of the light please")
    assert '<span class="ok">turn</span>' in diff
    assert '<del class="sub">on</del> <ins class="sub">of</ins>' in diff
    assert '<del class="sub">&lt;now&gt;</del> <ins class="sub">please</ins>' in diff
    assert '<ins class="ins">b</ins>' in render.word_diff_html("a", "a b")
    assert '<del class="del">b</del>' in render.word_diff_html("a b", "a")


def test_worst_utterances_come_first_with_the_base_hypothesis() -> None:
    finetuned = [
        {"id": "u1", "ref": "a b", "hyp": "a b", "wer": 0.0},
        {"id": "u2", "ref": "c d", "hyp": "c x", "wer": 0.5},
    ]
    baseline = [{"id": "u2", "ref": "c d", "hyp": "", "wer": 1.0}]
    text = render.worst_utterances_html(finetuned, baseline, n=1)
    assert "u2" in text and "u1" not in text and "base (100.0%)" in text


def test_reports_render_as_markdown() -> None:
    report = {
        "num_rows": 3,
        "num_valid": 2,
        "num_invalid": 1,
        "problems": [{"line": 2, "audio_path": "/x/a|b.wav", "reason": "audio file not found"}],
        "over_limits": [],
        "warnings": [],
    }
    text = render.check_report_markdown(report, "m.jsonl")
    assert text.startswith("**3 rows: 2 valid, 1 invalid") and "audio file not found" in text
    assert "| line 2 |" in text  # a row without an id is named by its line
    assert render.check_report_markdown(None) == "No data check yet."
    table = render.comparison_markdown({"wer": 0.5, "cer": 0.2}, {"wer": 0.2, "cer": 0.1})
    assert "| fine-tuned | 20.0% | 10.0%" in table and "WER change: **-30.0 points**" in table
    # Chinese: the change that matters is CER's (WER counts characters too, but CER leads)
    zh = {"headline": "cer"}
    table = render.comparison_markdown(
        {**zh, "wer": 0.9, "cer": 0.4}, {**zh, "wer": 0.9, "cer": 0.25}
    )
    assert "CER change: **-15.0 points**" in table
    table = render.comparison_markdown(
        None, {"wer": 0.2, "cer": 0.1, "num_samples": 5, "loops": 2, "longform": {"wer": 0.5}}
    )
    assert "| 5 | 2 | 50.0% | – |" in table  # utterances, in a loop, long files' WER
    probes = {"clips": 12, "words": 3, "clips_with_words": 2}
    table = render.comparison_markdown(None, {"wer": 0.2, "cer": 0.1, "nonspeech": probes})
    assert "| 3 (2 of 12 clips) |" in table  # words said on non-speech probes
    general = {"headline": "wer", "wer": 0.11, "base_wer": 0.1, "change": 0.01, "num_samples": 4}
    table = render.comparison_markdown(None, {"wer": 0.2, "guards": {"sets": {"general": general}}})
    assert (
        "**Guard sets**" in table
        and "| general | 4 | 10.00 % | 11.00 % WER | +1.00 points |" in table
    )
    line = render.progress_html({"state": "running", "headline": "cer", "last_eval_cer": 0.25})
    assert "eval CER 25.0%" in line


def test_data_check_is_saved_and_shown_again(tmp_path: Path, tiny_whisper: Path) -> None:
    project = Project(tmp_path / "p")
    assert actions.check_data(project, False, "", "en").startswith("✗ No recordings")
    project.add_clip(wav(tmp_path, "a.wav"), "hello", "en")
    text = actions.check_data(project, True, str(tiny_whisper), "en")
    assert "1 rows: 1 valid, 0 invalid" in text
    assert actions.last_check(project) == text
    project.update_settings(data_source="source", train_source=str(tmp_path / "none.jsonl"))
    assert actions.check_data(project, False, "", "en").startswith("✗ manifest not found")


# ----- models, hub, app -----------------------------------------------------------------


WHISPER, VOXTRAL = "Whisper", "Voxtral"  # the families' UI labels


def test_model_choices_round_trip() -> None:
    assert describe_model("") == (WHISPER, "small", "")  # the default family and size
    assert resolve_model(WHISPER, "large-v3", "") == "openai/whisper-large-v3"
    assert resolve_model(VOXTRAL, "mini (3B)", "") == "mistralai/Voxtral-Mini-3B-2507"
    assert resolve_model(LOCAL, None, " /m ") == "/m"
    assert {"tiny.en", "base.en", "small.en", "medium.en", "large-v3"} <= set(SIZES[WHISPER])
    for family, sizes in SIZES.items():
        for size, hub_id in sizes.items():
            assert describe_model(hub_id) == (family, size, "")
    assert describe_model("/some/folder") == (LOCAL, None, "/some/folder")


def test_model_cache_loads_once_and_keeps_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    from asrtune.ui import models

    loads: list[str] = []

    def fake_load(source: str) -> str:
        time.sleep(0.2)
        loads.append(source)
        return f"loaded {source}"

    monkeypatch.setattr(models, "load_model", fake_load)
    cache = ModelCache(size=2)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("a"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["a"] and results == ["loaded a"] * 4
    cache.get("b")
    cache.get("c")
    cache.get("a")
    assert loads == ["a", "b", "c", "a"] and len(cache) == 2


def test_upload_errors_never_show_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    class FailingApi:
        def __init__(self, token: str) -> None:
            self.token = token

        def create_repo(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError(f"401 Unauthorized for token {self.token}\nmore")

    monkeypatch.setattr(huggingface_hub, "HfApi", FailingApi)
    with pytest.raises(AsrtuneError) as error:
        upload({"a.txt": b"x"}, "someone/repo", TOKEN)
    assert TOKEN not in str(error.value) and "***" in str(error.value)
    assert "HF_TOKEN" not in os.environ or os.environ["HF_TOKEN"] != TOKEN
    assert scrub("a TOKEN b", "TOKEN") == "a *** b" and scrub("x", None) == "x"


def test_the_app_builds_with_safe_launch_defaults(tmp_path: Path) -> None:
    demo = app.build_app(tmp_path / "p")
    by_name = {fn.name: fn for fn in demo.fns.values()}
    transcribe = by_name["on_transcribe"]
    assert transcribe.concurrency_limit >= 2 and transcribe.concurrency_id == "transcribe"
    assert by_name["on_tick"].concurrency_limit is None  # progress never waits on others
    options = app.launch_options()
    assert options["server_name"] == "127.0.0.1" and options["server_port"] == 7860
    assert options["run_history"] is False and options["max_file_size"] == "200mb"
    assert options["auth"] is None and options["share"] is False
    assert app.launch_options(auth="ann:secret")["auth"] == ("ann", "secret")
    with pytest.raises(AsrtuneError, match="USER:PASSWORD"):
        app.parse_auth("no-colon")


def test_load_row_gives_playable_audio(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    project.add_clip(wav(tmp_path, "a.wav"), "hello", "en")
    (rate, samples), text, language = actions.load_row(project, "rec0001")
    assert rate == 16000 and samples.dtype == np.int16 and (text, language) == ("hello", "en")
    assert actions.load_row(project, None) == (None, "", "")


def test_ui_command_parses_and_launches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from asrtune.cli import USAGE, main
    from asrtune.commands import COMMANDS
    from asrtune.commands import ui as command

    assert COMMANDS["ui"] == "asrtune.commands.ui" and "\n  ui " in USAGE
    args = command.build_parser().parse_args([])
    assert (args.host, args.port, args.auth, args.share) == ("127.0.0.1", 7860, None, False)
    seen: dict = {}
    monkeypatch.setattr(app, "launch", lambda demo, **kw: seen.update(kw, demo=demo))
    monkeypatch.setenv(command.AUTH_ENV, "ann:pw")
    code = main(["ui", "--project", str(tmp_path / "proj"), "--port", "7999"])
    assert code == 0 and seen["port"] == 7999 and seen["auth"] == "ann:pw"
    assert seen["host"] == "127.0.0.1" and (tmp_path / "proj" / "runs").is_dir()


def test_a_data_check_is_marked_out_of_date_when_the_data_changes(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    first = project.add_clip(wav(tmp_path, "a.wav"), "one", "en")
    project.add_clip(wav(tmp_path, "b.wav", freq=500), "two", "en")
    report = actions.check_data(project, False, "", "en")
    assert report.startswith("✓") and actions.last_check(project) == report
    # switching to a named source and back changes no data: each choice keeps its check
    actions.save_source(project, "source", "", "", "")
    assert actions.last_check(project) == "No data check of this training data yet."
    actions.save_source(project, "recordings", "", "", "")
    assert actions.last_check(project) == report
    project.delete_row(first["id"])
    assert actions.last_check(project).startswith("⚠ **Out of date:**")
    assert actions.check_data(project, False, "", "en") == actions.last_check(project)


def test_wording_speaks_the_pages_language_and_logs_read_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert "--" not in actions.LEARNING_RATE_HINT and "LoRA" in actions.LEARNING_RATE_HINT
    # elapsed counts from the worker's start: it never jumps back when training starts
    status = {"state": "running", "started": 100.0, "train_started": 108.0}
    assert "elapsed 0:09" in render.progress_html(status, now=109.0)
    run_dir = tmp_path / "p" / "runs" / "20260101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / jobs.LOG_FILE).write_text("\x1b[1m\x1b[38;5;208mtrackio show\x1b[0m done\n")
    assert jobs.read_log(run_dir) == "trackio show done"
    # tracking stays in the project folder
    assert jobs.worker_env(tmp_path / "p" / "trackio")["TRACKIO_DIR"] == str(
        tmp_path / "p" / "trackio"
    )
    # asrtune ui prints its own address line, not Gradio's share=True advice
    demo = app.build_app(tmp_path / "ui")
    app.launch(demo, host="127.0.0.1", port=None, prevent_thread_lock=True)
    try:
        printed = capsys.readouterr()
    finally:
        demo.close()
    assert "asrtune ui: http://127.0.0.1:" in printed.out, printed
    assert "share=True" not in printed.out + printed.err


def test_the_data_check_names_rows_by_id_and_warns_without_a_tick(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    project.add_clip(wav(tmp_path, "a.wav"), "one", "en")
    broken = project.add_clip(wav(tmp_path, "b.wav", freq=500), "two", "en")
    project.audio_file(broken).write_bytes(b"not audio")
    report = actions.check_data(project, False, "", "en")
    assert report.startswith("✗ **1 invalid row(s)**") and "| rec0002 |" in report, report
    assert "line 2" not in report
    project.delete_row(broken["id"])
    project.add_clip(wav(tmp_path, "c.wav", seconds=0.2, freq=700), "x " * 40, "en")
    report = actions.check_data(project, False, "", "en")  # too much text: a warning
    assert report.startswith("⚠") and "✓" not in report, report


def test_a_deleted_row_comes_back_with_undo_and_messages_stay_short(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    long_text = " ".join(["word"] * 1500)  # a 7,500-character transcript
    rows = [
        project.add_clip(wav(tmp_path, f"{i}.wav", freq=200 + 100 * i), text, "en")
        for i, text in enumerate(["one", long_text, "three"])
    ]
    message = actions.delete_row(project, rows[1]["id"]).text
    assert message.startswith("✓ Deleted rec0002") and len(message) < 160
    assert [r["id"] for r in project.rows()] == ["rec0001", "rec0003"]
    assert not project.audio_file(rows[1]).exists()
    assert actions.undo_delete(project).text.startswith("✓ Restored rec0002")
    assert project.rows() == rows and project.audio_file(rows[1]).is_file()
    assert actions.undo_delete(project).text == "✗ nothing to undo"
    assert actions.delete_row(project, None).text == "✗ Choose a row first."


def test_a_named_source_is_confirmed_and_its_eval_source_checked_too(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    train = write_dataset(tmp_path / "train", 3)
    evaluation = write_dataset(tmp_path / "eval", 2)
    with open(evaluation, "a", encoding="utf-8") as handle:  # one broken eval row
        handle.write(json.dumps({"audio_path": "missing.wav", "text": "gone"}) + "\n")
    message = actions.use_source(project, "source", str(train), str(evaluation), "").text
    assert message.startswith("✓ Source saved.") and "(a manifest)" in message
    assert actions.use_source(project, "source", "nope.jsonl", "", "").text.startswith(
        "✗ training source: no such manifest file"
    )
    assert actions.use_source(project, "source", "granary:de_voxpopuli", "", "").text == (
        "✗ Granary holds manifests only: type the Granary audio root."
    )
    actions.use_source(project, "source", str(train), str(evaluation), "")
    report = actions.check_data(project, False, "", "en")
    training, eval_part = report.split("**Eval source:**")
    assert "3 rows: 3 valid, 0 invalid" in training
    assert "3 rows: 2 valid, 1 invalid" in eval_part and "missing.wav" in eval_part
    assert actions.last_check(project) == report
    actions.use_source(project, "source", str(train), "", "")  # another eval source
    assert actions.last_check(project).startswith("⚠ **Out of date:**")


def test_upload_choices_are_explained_in_the_pages_terms(tmp_path: Path) -> None:
    """No command-line flags (--base-model, --merged) in the page's messages."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    base = str(tmp_path / "local-whisper")
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    problem = actions.upload_mode_problem(adapter, "adapter")
    assert problem is not None and "choose Upload: merged" in problem and "--" not in problem
    assert actions.upload_mode_problem(adapter, "merged") is None
    assert actions.upload_mode_problem(adapter, "auto") is None
    hub = tmp_path / "hub-adapter"
    hub.mkdir()
    config = {"base_model_name_or_path": "openai/whisper-small"}
    (hub / "adapter_config.json").write_text(json.dumps(config))
    assert actions.upload_mode_problem(hub, "adapter") is None


def test_an_unreachable_hub_model_is_named_before_a_run_or_check_fails(
    tmp_path: Path, tiny_whisper: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asrtune.ui.models import hub_model_unreachable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    project = Project(tmp_path / "p")
    project.add_clip(wav(tmp_path, "a.wav"), "hello", "en")
    message, run_id = started(actions.start_training(project, form("openai/whisper-small")))
    assert run_id is None and "openai/whisper-small is not downloaded" in message
    assert "Make a tiny random Whisper" in message and project.runs() == []
    check = actions.check_data(project, True, "openai/whisper-small", "en")
    assert check.startswith("✗ openai/whisper-small is not downloaded")
    assert hub_model_unreachable(str(tiny_whisper)) is None  # a local folder


def test_undo_refuses_a_row_whose_audio_came_back_meanwhile(tmp_path: Path) -> None:
    project = Project(tmp_path / "p")
    clip = wav(tmp_path, "a.wav")
    row = project.add_clip(clip, "one", "en")
    project.delete_row(row["id"])
    again = project.add_clip(clip, "one again", "en")
    assert actions.undo_delete(project).text == (
        f"✗ its audio is in the dataset again, as {again['id']}"
    )
    assert [r["text"] for r in project.rows()] == ["one again"]


def test_a_hub_that_answers_is_reachable_whatever_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 401 (a private model) is the loader's to explain, not 'the Hub cannot be reached'."""
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from asrtune.ui.models import hub_model_unreachable

    def unauthorized(self: object, repo_id: str, **kwargs: object) -> None:
        request = httpx.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
        raise HfHubHTTPError("401 Unauthorized", response=httpx.Response(401, request=request))

    monkeypatch.setattr(HfApi, "model_info", unauthorized)
    assert hub_model_unreachable("someone/private-whisper-401") is None

    def no_network(self: object, repo_id: str, **kwargs: object) -> None:
        raise httpx.ConnectError("Name or service not known")

    monkeypatch.setattr(HfApi, "model_info", no_network)
    assert "cannot be reached" in (hub_model_unreachable("someone/whisper-no-net") or "")
