"""The CLI in-process: eval, transcribe, import-ct2, user errors, and the CLI reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asrtune.cli import main
from asrtune.metrics import score_corpus
from asrtune.models import FAMILIES
from tests.conftest import write_dataset


def test_eval_writes_report_and_per_utterance_file(
    tiny_whisper: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = tmp_path / "r" / "report.json"
    code = main(
        [
            "eval",
            "--model",
            str(tiny_whisper),
            "--manifest",
            str(dataset),
            "--output",
            str(report),
            "--batch-size",
            "3",
            "--max-new-tokens",
            "8",
            "--precision",
            "bf16",
        ]
    )
    assert code == 0
    data = json.loads(report.read_text())
    assert data["precision"] == "bf16-autocast"
    assert data["num_samples"] == 8
    assert json.loads(capsys.readouterr().out)["num_samples"] == 8
    rows = [
        json.loads(x) for x in (tmp_path / "r" / "report.utterances.jsonl").read_text().splitlines()
    ]
    assert [r["id"] for r in rows] == [f"u{i}" for i in range(8)]
    # the report's rates are the corpus rates of the texts it lists (English rows)
    score, _ = score_corpus([r["ref"] for r in rows], [r["hyp"] for r in rows], ["en"] * 8)
    for key in ("wer", "cer", "wer_unnormalized"):
        assert data[key] == getattr(score, key), key
    assert all(set(r) >= {"id", "ref", "hyp", "wer"} for r in rows)


def test_eval_multilingual_rows_need_a_language(
    tiny_whisper: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = write_dataset(tmp_path / "d", 2, language=None)
    code = main(["eval", "--model", str(tiny_whisper), "--manifest", str(manifest)])
    assert code == 0  # no language: Whisper detects it
    code = main(
        ["eval", "--model", str(tiny_whisper), "--manifest", str(manifest), "--language", "xx"]
    )
    assert code == 2 and "does not know the language" in capsys.readouterr().err


def test_transcribe_prints_one_line_per_file(
    tiny_whisper_en: Path, dataset: Path, capsys: pytest.CaptureFixture
) -> None:
    files = sorted(str(p) for p in (dataset.parent / "audio").glob("*.wav"))[:2]
    assert (
        main(["transcribe", "--model", str(tiny_whisper_en), *files, "--max_new_tokens", "6"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == files


@pytest.mark.parametrize(
    "argv,message",
    [
        (["eval", "--model", "/nonexistent/model", "--manifest", "x.jsonl"], "not found"),
        (["transcribe", "--model", "{tmp}", "a.wav"], "no config.json"),
        (
            ["train", "--model", "m", "--train_manifest", "/none.jsonl", "--output_dir", "{tmp}"],
            "manifest not found",
        ),
        (["import-ct2", "/nonexistent", "{tmp}/out"], "/nonexistent"),
        (["frobnicate"], "unknown command"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("flag", [["--batch-size", "many"], ["--precision", "fp16"]])
def test_bad_flag_exits_2(flag: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--model", "m", "--manifest", "x", *flag])
    assert exit_info.value.code == 2


def test_help_explains_every_flag_with_its_default(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps help to the terminal width
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--learning_rate LEARNING_RATE, --learning-rate LEARNING_RATE" in out
    rates = ",".join(f"{name}{spec.lora_learning_rate:g}" for name, spec in FAMILIES.items())
    assert rates.startswith("whisper0.001,voxtral0.0001")  # the families' own LoRA rates
    full = ",".join(f"{n}{s.learning_rate:g}" for n, s in FAMILIES.items() if s.learning_rate)
    assert "wav2vec20.0003" in full  # the self-supervised families' own full rates
    assert f"(default:2e-05(fullfine-tuning;{full});with--lora{rates})" in "".join(out.split())
    assert "--lora" in out and "--train_manifest" in out
    eval_steps = out.split("--eval_steps EVAL_STEPS, --eval-steps EVAL_STEPS")[1]
    assert "(default: --save_steps" in " ".join(eval_steps.split("\n  --")[0].split())


@pytest.mark.parametrize("command", ["eval", "transcribe"])
def test_decoding_flags_show_each_spelling_and_default_once(
    command: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "--language LANGUAGE, --language LANGUAGE" not in out
    assert "--batch-size BATCH_SIZE, --batch_size BATCH_SIZE" in out
    for line in out.splitlines():
        assert line.count("(default:") <= 1, line
    assert "(default: 32 + 25 per second of audio)" in out


def test_cli_reference_is_current() -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "cli_reference", root / "scripts" / "cli_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "docs" / "cli.md").read_text() == module.render(), (
        "docs/cli.md is stale: run python scripts/cli_reference.py"
    )


def test_readme_layout_names_the_modules_that_exist() -> None:
    """Every module the README's layout table names exists, and every public module of
    the package is in it (private ones start with _)."""
    import re

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    named = set(re.findall(r"`([\w/]+(?:\.py|/))`", table))
    package = root / "asrtune"
    assert named and all((package / name).exists() for name in named), named
    public = {
        p.name + ("/" if p.is_dir() else "")
        for p in package.iterdir()
        if not p.name.startswith(("_", "."))
        and (p.suffix == ".py" or (p / "__init__.py").is_file())
    }
    assert public - {"cli.py", "commands/"} <= named, public - named


def test_the_report_counts_error_kinds_loops_and_long_files_apart(
    talkative_whisper: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A 35-s file is scored in the report's long-form section too; word errors are split
    into substitutions, deletions and insertions; looping hypotheses are counted."""
    import soundfile as sf

    from tests.conftest import tone

    rows = []
    for name, seconds in (("short", 2.0), ("long", 35.0)):
        sf.write(tmp_path / f"{name}.wav", tone(seconds, 300), 16000)
        rows.append(
            {"id": name, "audio_path": f"{name}.wav", "text": "hello there", "language": "en"}
        )
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "report.json"
    args = ["eval", "--model", str(talkative_whisper), "--manifest", str(manifest)]
    assert main([*args, "--output", str(report), "--max-new-tokens", "12"]) == 0
    data = json.loads(report.read_text())
    assert data["longform"]["files"] == 1
    utterances = [json.loads(x) for x in tmp_path.joinpath("report.utterances.jsonl").open()]
    long_only, _ = score_corpus([utterances[1]["ref"]], [utterances[1]["hyp"]], ["en"])
    assert data["longform"]["wer"] == long_only.wer
    errors = data["substitutions"] + data["deletions"] + data["insertions"]
    assert errors == round(data["wer"] * data["reference_words"]) and errors > 0
    assert data["loops"] == sum(u["loop"] for u in utterances)


def test_eval_scores_non_speech_probes_apart(
    talkative_whisper: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Rows with empty text are non-speech probes: the words said on them are counted in
    ``nonspeech`` and kept out of WER; a hypothesis cut at the token cap is a loop."""
    import numpy as np
    import soundfile as sf

    from tests.conftest import tone

    rng = np.random.default_rng(0)
    clips = {
        "speech": (tone(2.0, 300), "hello there"),
        "silence": (np.zeros(32000, dtype=np.float32), ""),
        "noise": ((0.01 * rng.standard_normal(32000)).astype(np.float32), ""),
    }
    rows = []
    for name, (audio, text) in clips.items():
        sf.write(tmp_path / f"{name}.wav", audio, 16000)
        rows.append({"id": name, "audio_path": f"{name}.wav", "text": text, "language": "en"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "report.json"
    args = ["eval", "--model", str(talkative_whisper), "--manifest", str(manifest)]
    assert main([*args, "--output", str(report), "--max-new-tokens", "6"]) == 0
    data = json.loads(report.read_text())
    utterances = [json.loads(x) for x in tmp_path.joinpath("report.utterances.jsonl").open()]
    assert [u["id"] for u in utterances] == ["speech", "silence", "noise"]
    said = [len(u["hyp_normalized"].split()) for u in utterances[1:]]
    assert data["nonspeech"] == {
        "clips": 2,
        "words": sum(said),
        "clips_with_words": sum(n > 0 for n in said),
    }
    assert data["nonspeech"]["words"] > 0  # the talkative model talks on silence too
    speech_only, _ = score_corpus(["hello there"], [utterances[0]["hyp"]], ["en"])
    assert data["num_samples"] == 1 and data["wer"] == speech_only.wer
    # 6 new tokens: the talkative model never stops on its own, so every row hit the cap
    assert data["loops"] == 1 and all(u["loop"] for u in utterances)
