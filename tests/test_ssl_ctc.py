"""Self-supervised encoders with a CTC head (wav2vec2, w2v-BERT 2.0, HuBERT, WavLM,
data2vec-audio) and ``--new_vocabulary``: the character vocabulary and its normalization,
tiny and real-size builders, training items, greedy decoding, and the issue's end-to-end
run on espeak-ng Greek (train with a vocabulary built from the data, eval's CER,
transcribe in Greek script, the card's usage code with plain transformers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from asrtune.cli import main
from asrtune.config import parse_train_args
from asrtune.data.audio import load_audio
from asrtune.errors import AsrtuneError
from asrtune.models import load_model
from asrtune.models.ctc_vocabulary import (
    VocabularyOptions,
    build_vocabulary,
    label_text,
    missing_characters,
    normalize_transcript,
)
from asrtune.models.family import FAMILIES
from asrtune.models.kinds.ctc import summed_loss as summed_ctc_loss
from asrtune.models.ssl_ctc import collate, greedy_pieces
from asrtune.models.tiny_ssl import W2V_BERT_SIZES, WAV2VEC2_SIZES, parameter_count
from asrtune.training import train
from tests.conftest import FAST_TRAINING, tone
from tests.family_helpers import run_card_usage

SSL_FAMILIES = ("wav2vec2", "wav2vec2_bert", "hubert", "wavlm", "data2vec_audio")
GREEK = [
    "καλημέρα κόσμε",
    "τι κάνεις σήμερα",
    "η γάτα τρώει ψάρι",
    "ο ήλιος λάμπει",
    "θέλω νερό",
    "πού είναι το σπίτι",
]


# ----------------------------------------------------------------- the vocabulary


def test_vocabulary_of_greek_text_lowercased_without_punctuation() -> None:
    texts = ["Καλημέρα, κόσμε!", "Τι κάνεις; 3 γάτες."]
    vocabulary = build_vocabulary(texts, VocabularyOptions())
    vocab = vocabulary.token_to_id()
    assert list(vocab)[:3] == ["[PAD]", "[UNK]", "|"]  # the blank is id 0
    assert vocab["[PAD]"] == 0 and vocabulary.has_spaces
    # every character of the normalized text, final sigma kept apart (lower, not casefold)
    expected = set("".join(normalize_transcript(t, VocabularyOptions()) for t in texts)) - {" "}
    assert set(vocabulary.characters) == expected
    assert "ς" in vocab and "σ" in vocab and "Κ" not in vocab and "," not in vocab
    assert vocabulary.digits == "3"
    assert dict(vocabulary.dropped) == {",": 1, "!": 1, ";": 1, ".": 1}
    assert "digits kept" in vocabulary.report() and "','" in vocabulary.report()


def test_vocabulary_keeps_case_and_punctuation_when_asked() -> None:
    vocabulary = build_vocabulary(["Καλημέρα, κόσμε!"], VocabularyOptions(True, True))
    assert {"Κ", ",", "!"} <= set(vocabulary.characters)
    assert label_text("Καλημέρα, κόσμε!", vocabulary.token_to_id()) == "Καλημέρα, κόσμε!"


def test_script_without_spaces_gets_no_word_delimiter() -> None:
    vocabulary = build_vocabulary(["日本語です", "こんにちは"], VocabularyOptions())
    vocab = vocabulary.token_to_id()
    assert not vocabulary.has_spaces and "|" not in vocab
    assert label_text("日本 語。", vocab) == "日本語"  # no delimiter: spaces and punctuation go


def test_labels_follow_the_vocabulary_and_missing_characters_are_counted() -> None:
    vocab = build_vocabulary(["καλημέρα κόσμε"], VocabularyOptions()).token_to_id()
    assert label_text("ΚΑΛΗΜΈΡΑ,   κόσμε!", vocab) == "καλημέρα κόσμε"
    # NFD input is composed (NFC) before the lookup
    assert label_text("κο\u0301σμε", vocab) == "κόσμε"
    assert missing_characters(["καλή ζωή", "ζήτω"], vocab) == {"ζ": 2, "ή": 3, "ω": 2, "τ": 1}


def test_a_transcript_without_characters_is_an_error() -> None:
    with pytest.raises(AsrtuneError, match="no characters"):
        build_vocabulary(["...", ""], VocabularyOptions())


# ----------------------------------------------------------------- builders


def test_real_sizes_parameter_counts_on_the_meta_device() -> None:
    import transformers

    def count(config_class: str, model_class: str, dims: dict) -> int:
        config = getattr(transformers, config_class)(**dims, vocab_size=32)
        return parameter_count(model_class, config)

    # 32 tokens in the head; the encoders: 315 M (XLS-R 300M), 962 M (MMS 1B), 580 M
    assert count("Wav2Vec2Config", "Wav2Vec2ForCTC", WAV2VEC2_SIZES["xls-r-300m"]) == 315_471_520
    assert count("Wav2Vec2Config", "Wav2Vec2ForCTC", WAV2VEC2_SIZES["mms-1b"]) == 962_538_400
    w2v_bert = W2V_BERT_SIZES["w2v-bert-2.0"]
    assert count("Wav2Vec2BertConfig", "Wav2Vec2BertForCTC", w2v_bert) == 580_525_920


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``asrtune make-tiny --family F`` for every self-supervised family."""
    root = tmp_path_factory.mktemp("tiny_ssl")
    for family in SSL_FAMILIES:
        assert main(["make-tiny", str(root / family), "--family", family]) == 0
    return {family: root / family for family in SSL_FAMILIES}


@pytest.mark.parametrize("family", SSL_FAMILIES)
def test_tiny_model_loads_freezes_its_feature_encoder_and_decodes(
    tiny_models: dict[str, Path], family: str
) -> None:
    loaded = load_model(str(tiny_models[family]))
    assert loaded.family == family and loaded.capabilities.decoding == "ctc"
    assert not loaded.capabilities.packing and loaded.capabilities.new_vocabulary
    frozen = [n for n, p in loaded.model.named_parameters() if not p.requires_grad]
    assert all("feature_extractor" in n for n in frozen)
    assert bool(frozen) == (family != "wav2vec2_bert")  # w2v-BERT has no conv encoder
    # 40 s: two pieces of at most 30 s, one transcript each
    texts = loaded.adapter.generate(loaded, [tone(1.0, 300), tone(40.0, 500)], None, "transcribe")
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert 1450 <= loaded.adapter.limits(loaded).max_label_tokens <= 1500  # ~50 frames a second


def test_greedy_ctc_drops_frames_past_each_rows_length() -> None:
    # frames: a a blank a b | padding b b
    best = torch.tensor([[3, 3, 0, 3, 4, 4, 4, 4]])
    log_probs = torch.nn.functional.one_hot(best, 6).float().log()
    assert greedy_pieces(log_probs, torch.tensor([5]), blank=0) == [[3, 3, 4]]


def test_collate_pads_raw_audio_and_stacked_features() -> None:
    raw = collate(
        [
            {"input_values": np.ones(5), "labels": [3, 4]},
            {"input_values": np.ones(3), "labels": [5]},
        ]
    )
    assert raw["input_values"].shape == (2, 5) and raw["attention_mask"].tolist()[1] == [
        1,
        1,
        1,
        0,
        0,
    ]
    assert raw["labels"].tolist() == [[3, 4], [5, -100]]
    mel = collate([{"input_features": np.ones((4, 160)), "labels": []}])
    assert mel["input_features"].shape == (1, 4, 160) and mel["labels"].tolist() == [[-100]]


# ----------------------------------------------------------------- end to end, in Greek


@pytest.fixture(scope="module")
def greek(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 clips of espeak-ng Greek (6 sentences x 2 voices, ~1.3 s each)."""
    from asrtune.data.synth import synthesize_manifest

    return synthesize_manifest(GREEK, tmp_path_factory.mktemp("greek"), "el", 2, progress=False)


def _rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def _batch(loaded, manifest: Path) -> dict[str, torch.Tensor]:
    """Every row of ``manifest`` as one training batch of ``loaded``."""
    from asrtune.data.manifest import Row
    from asrtune.data.windows import Example

    items = []
    for r in _rows(manifest):
        row = Row(r["id"], str(manifest.parent / r["audio_path"]), r["text"], "el", r["duration"])
        example = Example(row, "el", len(r["text"]))
        items.append(loaded.adapter.window_item(loaded, [example], "transcribe"))
    return loaded.adapter.collate(items)


def _loss(loaded, manifest: Path) -> float:
    """CTC loss per character over ``manifest``, as the trainer computes it."""
    loaded.model.eval()
    with torch.no_grad():
        summed, count, _ = summed_ctc_loss(loaded.model, loaded.model, _batch(loaded, manifest))
    return float(summed / count)


def _make_talkative(folder: Path, out: Path) -> None:
    """``folder``'s model with the blank, [UNK] and the word delimiter never winning a
    frame: greedy decoding then writes a character every frame, so the decoding path
    (ids → the vocabulary's characters) shows whatever the tiny model learnt."""
    loaded = load_model(str(folder))
    with torch.no_grad():
        loaded.model.lm_head.bias[:3] -= 100.0  # [PAD] (the blank), [UNK] and | (space)
    loaded.adapter.save(loaded, out)


def _is_greek(text: str) -> bool:
    import unicodedata

    letters = [ch for ch in text if not ch.isspace()]
    return bool(letters) and all("GREEK" in unicodedata.name(ch) for ch in letters)


@pytest.mark.parametrize("family", ["wav2vec2", "wav2vec2_bert"])
def test_greek_with_a_new_vocabulary_end_to_end(
    family: str,
    greek: Path,
    tiny_models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    from asrtune.models.ctc_vocabulary import normalize_transcript

    model, out = tiny_models[family], tmp_path / "out"
    args = ["train", "--model", str(model), "--train-manifest", str(greek), *FAST_TRAINING]
    args += ["--eval-manifest", str(greek), "--output_dir", str(out), "--new_vocabulary"]
    assert main([*args, "--num_train_epochs", "6", "--learning_rate", "3e-3"]) == 0

    # the vocabulary holds every character of the (lowercased) training text, and only them
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    characters = {ch for t in GREEK for ch in normalize_transcript(t, VocabularyOptions())}
    assert set(vocab) == characters - {" "} | {"[PAD]", "[UNK]", "|"}
    assert vocab["[PAD]"] == 0 and "ς" in vocab  # the blank; final sigma as written
    assert "new vocabulary: " in (out / "vocabulary" / "report.txt").read_text(encoding="utf-8")

    # the loss fell: the trained model against the same model with a fresh head for the vocabulary
    trained = load_model(str(out))
    assert trained.model.config.vocab_size == len(vocab) == trained.model.lm_head.out_features
    fresh = load_model(str(model))
    fresh.adapter.use_vocabulary(fresh, build_vocabulary(GREEK, VocabularyOptions()), tmp_path)
    assert _loss(trained, greek) < _loss(fresh, greek) - 0.5

    # eval reports CER; transcribe writes Greek script
    report = tmp_path / "report.json"
    assert (
        main(["eval", "--model", str(out), "--manifest", str(greek), "--output", str(report)]) == 0
    )
    assert 0 <= json.loads(report.read_text())["cer"] <= 1
    talkative = tmp_path / "talkative"
    _make_talkative(out, talkative)
    clip = str(greek.parent / _rows(greek)[0]["audio_path"])
    capsys.readouterr()
    assert main(["transcribe", "--model", str(talkative), clip]) == 0
    assert _is_greek(capsys.readouterr().out.strip())

    # the model card's code runs with plain transformers and writes Greek too
    card, printed, _ = run_card_usage(
        talkative, ["someone/greek-ctc", "--language", "el"], tmp_path, monkeypatch, capsys
    )
    assert trained.adapter.MODEL_CLASS in card and _is_greek(printed)


def test_eval_characters_missing_from_the_vocabulary_stop_training(
    greek: Path, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    eval_manifest = tmp_path / "eval.jsonl"
    row = {**_rows(greek)[0], "audio_path": str(greek.parent / _rows(greek)[0]["audio_path"])}
    eval_manifest.write_text(json.dumps({**row, "text": "ζήτω η ζωή"}, ensure_ascii=False) + "\n")
    args = ["--model", str(tiny_models["wav2vec2"]), "--train-manifest", str(greek)]
    args += [*FAST_TRAINING, "--eval-manifest", str(eval_manifest), "--new_vocabulary"]
    with pytest.raises(AsrtuneError, match=r"not in the vocabulary: 'ζ' x2"):
        train(parse_train_args([*args, "--output_dir", str(tmp_path / "out")]))


def test_new_vocabulary_is_refused_for_a_family_with_its_own_tokenizer(
    dataset: Path, tmp_path: Path
) -> None:
    model = FAMILIES["parakeet_ctc"].build_tiny(tmp_path / "parakeet")
    args = ["--model", str(model), "--train-manifest", str(dataset), "--new_vocabulary"]
    with pytest.raises(AsrtuneError, match="not supported for parakeet_ctc"):
        train(parse_train_args([*args, *FAST_TRAINING, "--output_dir", str(tmp_path / "o")]))


def test_mms_adapter_run_changes_only_adapters_and_head(greek: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    base = FAMILIES["wav2vec2"].build_tiny(tmp_path / "mms", size="tiny-mms")
    out = tmp_path / "out"
    args = ["--model", str(base), "--train-manifest", str(greek), *FAST_TRAINING]
    args += ["--new_vocabulary", "--target_lang", "ell", "--learning_rate", "1e-2"]
    train(parse_train_args([*args, "--num_train_epochs", "1", "--output_dir", str(out)]))

    before, after = (
        load_file(str(base / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    adapter = load_file(str(out / "adapter.ell.safetensors"))
    assert adapter and all("adapter_layer" in k or k.startswith("lm_head") for k in adapter)
    assert after["lm_head.weight"].shape[0] == len(json.loads((out / "vocab.json").read_text()))
    encoder = [k for k in before if not k.startswith("lm_head")]  # the head is new
    changed = {k for k in encoder if not torch.equal(before[k], after[k])}
    assert changed and all("adapter_layer" in k for k in changed)
    assert all(torch.equal(after[k], v) for k, v in adapter.items())
    # plain transformers loads the adapter file by its language
    from transformers import Wav2Vec2ForCTC

    model = Wav2Vec2ForCTC.from_pretrained(str(out))
    model.load_adapter("ell")
    torch.testing.assert_close(model.lm_head.weight, adapter["lm_head.weight"])
    from asrtune.models.ssl_recipes import WAV2VEC2_RECIPE, UsageContext
    from asrtune.publish.card import language_adapter

    assert language_adapter(["model.safetensors", "adapter.ell.safetensors"]) == "ell"
    assert language_adapter(["adapter_model.safetensors"]) is None  # a LoRA adapter
    code = WAV2VEC2_RECIPE.usage(UsageContext("someone/mms-ell", language_adapter="ell"))
    assert 'model.load_adapter("ell")' in code


def test_two_processes_train_the_same_weights_as_one(
    greek: Path, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """--new_vocabulary under torchrun: every process builds the same vocabulary and head;
    1 process x 4 and 2 processes x 2 end with the same weights (SGD, constant rate)."""
    from tests.test_distributed import EXACT, _assert_same_weights, _torchrun

    common = ["train", "--model", str(tiny_models["wav2vec2"]), "--train-manifest", str(greek)]
    common += [*EXACT, "--learning_rate", "0.05", "--num_train_epochs", "1", "--new_vocabulary"]
    assert (
        main([*common, "--output_dir", str(tmp_path / "1x4"), "--per_device_train_batch_size", "4"])
        == 0
    )
    _torchrun(
        [*common, "--output_dir", str(tmp_path / "2x2"), "--per_device_train_batch_size", "2"]
    )
    one, two = (json.loads((tmp_path / n / "vocab.json").read_text()) for n in ("1x4", "2x2"))
    assert one == two
    _assert_same_weights(tmp_path / "1x4", tmp_path / "2x2", atol=1e-4)


# ----------------------------------------------------------------- beam search


TOKENS = ["[PAD]", "[UNK]", "|", "a", "c", "k", "t"]


def _frames(*rows: dict[str, float]) -> np.ndarray:
    """(T, V) log-probabilities: each row's named tokens get their probability, the rest
    share what is left."""
    out = np.full((len(rows), len(TOKENS)), 1e-3)
    for t, row in enumerate(rows):
        for token, p in row.items():
            out[t, TOKENS.index(token)] = p
    return np.log(out / out.sum(1, keepdims=True))


# "kat" by a hair at the first frame: "c" is nearly as likely
AMBIGUOUS = _frames({"k": 0.5, "c": 0.45}, {"[PAD]": 0.9}, {"a": 0.9}, {"t": 0.9}, {"[PAD]": 0.9})


def test_beam_search_without_help_is_greedy_and_hotwords_or_an_lm_fix_the_spelling() -> None:
    from asrtune.models.ctc_beam import BeamOptions, beam_search, char_ngram

    assert beam_search(AMBIGUOUS, TOKENS, blank=0) == "kat"
    with_hotword = BeamOptions(hotwords=("cat",), hotword_weight=1.0)
    assert beam_search(AMBIGUOUS, TOKENS, 0, with_hotword) == "cat"
    with_lm = BeamOptions(lm=char_ngram(["a cat", "the cat sat", "cats"]), lm_weight=1.0)
    assert beam_search(AMBIGUOUS, TOKENS, 0, with_lm) == "cat"


def test_beam_search_keeps_double_letters_across_a_blank_and_writes_spaces() -> None:
    from asrtune.models.ctc_beam import beam_search

    frames = _frames(
        {"a": 0.9}, {"a": 0.9}, {"[PAD]": 0.9}, {"a": 0.9}, {"|": 0.9}, {"t": 0.9}, {"|": 0.9}
    )
    assert beam_search(frames, TOKENS, blank=0) == "aa t"


def test_full_fine_tuning_takes_the_familys_learning_rate(tiny_models: dict[str, Path]) -> None:
    from asrtune.config import ModelConfig, default_learning_rate

    assert default_learning_rate(ModelConfig(model=str(tiny_models["wav2vec2"]))) == 3e-4
    assert default_learning_rate(ModelConfig(model=str(tiny_models["wav2vec2_bert"]))) == 5e-5
    assert default_learning_rate(ModelConfig(model="openai/whisper-small")) == 2e-5
    lora = ModelConfig(model=str(tiny_models["wav2vec2"]), lora=True)
    assert default_learning_rate(lora) == 1e-4
    with pytest.raises(AsrtuneError, match="LoRA adapter cannot carry"):
        ModelConfig(model="x", lora=True, new_vocabulary=True)


def test_hotwords_steer_ctc_beam_search_from_the_cli(
    greek: Path, tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A CTC head that finds every character equally likely in every frame: greedy writes
    one character, while ``--hotwords`` beam search spells the hotword; an empty list gives
    greedy's text."""
    loaded = load_model(str(tiny_models["wav2vec2"]))
    loaded.adapter.use_vocabulary(loaded, build_vocabulary(GREEK, VocabularyOptions()), tmp_path)
    with torch.no_grad():
        loaded.model.lm_head.weight.zero_()
        loaded.model.lm_head.bias.zero_()
        loaded.model.lm_head.bias[0] = -1.0  # the blank a little less likely
    flat = tmp_path / "flat"
    loaded.adapter.save(loaded, flat)
    clip = str(greek.parent / _rows(greek)[0]["audio_path"])
    term = "καλημέρα"
    (tmp_path / "terms.txt").write_text(f"{term}\n", encoding="utf-8")

    def transcribe(*flags: str) -> str:
        capsys.readouterr()
        assert main(["transcribe", "--model", str(flat), clip, *flags]) == 0
        return capsys.readouterr().out.strip()

    greedy = transcribe()
    boosted = transcribe("--hotwords", str(tmp_path / "terms.txt"))
    assert term not in greedy and term in boosted
    # no hotwords: greedy's text
    flat_model = load_model(str(flat))
    audio = [load_audio(clip)]
    plain = flat_model.adapter.generate(flat_model, audio, None, "transcribe")
    assert flat_model.adapter.generate_boosted(flat_model, audio, None, "transcribe", []) == plain
    assert plain[0] == greedy
