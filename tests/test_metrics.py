"""WER/CER against hand-computed values; normalizers."""

from __future__ import annotations

import pytest

from asrtune.metrics import (
    char_counts,
    headline_metric,
    normalize_multilingual,
    normalizer_for,
    repeats_in_a_loop,
    score_corpus,
    word_counts,
)


def test_word_counts_by_hand() -> None:
    # ref 5 words; hyp: 1 substitution (sat→sit), 1 deletion (the), 1 insertion (down)
    counts = word_counts("the cat sat on the", "the cat sit on down mat")
    # alignment: the=the cat=cat sat→sit on=on the→down +mat: 2 S + 1 I = 3 errors
    assert (counts.errors, counts.reference_units) == (3, 5)
    assert counts.rate == pytest.approx(0.6)


def test_char_counts_by_hand() -> None:
    counts = char_counts("abcd", "abxd e")  # c→x, insert " e": 1 S + 2 I
    assert (counts.errors, counts.reference_units) == (3, 4)


def test_corpus_wer_is_total_errors_over_total_words_not_a_mean() -> None:
    refs = ["a b c d e f g h i j", "k"]  # 10 words + 1 word
    hyps = ["a b c d e f g h i j", "x"]  # 0 errors + 1 error
    score, utts = score_corpus(refs, hyps, ["de", "de"])
    assert score.wer == pytest.approx(1 / 11)  # a per-utterance mean would be 0.5
    assert [u.words.rate for u in utts] == [0.0, 1.0]
    assert score.num_samples == 2 and score.reference_words == 11


def test_english_normalizer_makes_wer_ignore_case_punctuation_and_spelling() -> None:
    score, _ = score_corpus(
        ["Hello, World! The colour is grey."], ["hello world the color is gray"], ["en"]
    )
    assert score.wer == 0.0
    assert score.wer_unnormalized == pytest.approx(5 / 6)  # Hello, World! colour grey. differ


def test_multilingual_normalizer_keeps_combining_marks() -> None:
    hindi = "नमस्ते, दुनिया!"
    assert normalize_multilingual(hindi) == "नमस्ते दुनिया"
    assert normalizer_for("hi") is normalize_multilingual
    # a hypothesis missing a virama is one word error, not zero
    score, _ = score_corpus([hindi], ["नमसते दुनिया"], ["hi"])
    assert score.wer == pytest.approx(0.5)


def test_empty_reference_counts_insertions() -> None:
    score, utts = score_corpus(["..."], ["something here"], ["fr"])
    assert utts[0].words.errors == 2 and score.wer == 1.0
    score, _ = score_corpus(["..."], [""], ["fr"])
    assert score.wer == 0.0


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError):
        score_corpus(["a"], ["a", "b"])


def test_languages_without_spaces_count_characters_and_headline_cer() -> None:
    """2 of 6 characters wrong: a word-level WER would be 1.0 (one 'word' each side)."""
    score, utts = score_corpus(["今天去公园了"], ["明天去公圆了"], ["zh"])
    assert utts[0].chars.errors == 2
    assert score.cer == pytest.approx(2 / 6) and score.wer == pytest.approx(2 / 6)
    assert score.headline == "cer" and score.headline_rate == score.cer
    for language in ("ja", "th", "lo", "my", "km", "bo", "zh-TW", "yue"):
        assert headline_metric([language, None]) == "cer"
    for name in ("Chinese", "mandarin", "zho", "cmn", "jpn", "Japanese", "tha"):
        assert headline_metric([name]) == "cer", name
    # punctuation and the spaces Whisper puts between words are no character errors
    score, _ = score_corpus(["今天，去公园了。"], ["今天 去 公园 了"], ["Chinese"])
    assert score.cer == 0.0 and score.wer == 0.0
    assert headline_metric(["zh", "en"]) == "wer"  # a mixed set: words (characters in zh)
    assert headline_metric(["zh"], task="translate") == "wer"  # the output is English
    assert headline_metric([None]) == "wer"


def test_unknown_language_keeps_accents_and_translations_score_as_english() -> None:
    """Without a language, accents must count (English's normalizer strips them)."""
    score, _ = score_corpus(["Straße über Café"], ["Strasse uber Cafe"], [None])
    assert score.wer == pytest.approx(2 / 3)  # über/uber and café/cafe; ß casefolds to ss
    assert normalizer_for(None) is normalize_multilingual
    # translate: English output, so English spelling rules apply whatever the audio was
    score, _ = score_corpus(
        ["The colour is grey."], ["the color is gray"], ["de"], task="translate"
    )
    assert score.wer == 0.0


def test_multilingual_normalizer_keeps_joiners_and_decimal_commas() -> None:
    persian = "می\u200cخواهم"  # one word: ZWNJ joins its parts
    assert normalize_multilingual(persian) == persian
    assert normalize_multilingual("ज़्\u200dय") == "ज़्\u200dय"
    # a joiner between symbols (an emoji sequence) leaves no "word" behind
    assert normalize_multilingual("family \U0001f468\u200d\U0001f469 here") == "family here"
    assert (
        normalize_multilingual("Es kostet 3,5 Euro, nicht 1.000!")
        == "es kostet 3,5 euro nicht 1.000"
    )
    score, _ = score_corpus(["3,5 Euro"], ["3 5 Euro"], ["de"])
    assert score.wer > 0


def test_substitutions_deletions_and_insertions_are_counted_apart() -> None:
    counts = (
        word_counts("a b c d", "a x c d")
        + word_counts("a b c d", "a c d")
        + word_counts("a b", "a b c c")
    )
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 1, 2)
    assert counts.errors == 4 and counts.reference_units == 10
    score, _ = score_corpus(["the cat sat", "a b"], ["the bat sat", "a b c d"], ["en", "en"])
    assert (score.substitutions, score.deletions, score.insertions) == (1, 0, 2)
    assert score.wer == pytest.approx(3 / 5)


def test_decoding_loops_are_told_from_speech() -> None:
    assert repeats_in_a_loop("thank you thank you thank you thank you")
    assert repeats_in_a_loop("so " * 8)
    assert repeats_in_a_loop("the meeting is at ten " + "i think that " * 4 + "ok")
    assert not repeats_in_a_loop("no no no no")  # 4 words: said, not looped
    assert not repeats_in_a_loop("thank you thank you thank you")  # three times
    assert not repeats_in_a_loop("the cat sat on the mat and the dog sat on the rug")
    score, utterances = score_corpus(
        ["hello there", "good morning"], ["hello " * 12, "good morning"], ["en", "en"]
    )
    assert [u.loop for u in utterances] == [True, False] and score.loops == 1


def test_a_hypothesis_cut_at_the_token_cap_is_a_loop() -> None:
    from asrtune.models import Transcript

    hypotheses = [Transcript("the report is due on", capped=True), Transcript("good morning")]
    score, utterances = score_corpus(
        ["the report is due on friday", "good morning"], hypotheses, ["en", "en"]
    )
    assert [u.loop for u in utterances] == [True, False] and score.loops == 1


def test_rows_without_text_are_scored_apart_as_non_speech() -> None:
    from asrtune.metrics import nonspeech_score

    score, utterances = score_corpus(
        ["hello there", "", "good morning", "  "],
        ["hello there", "you", "good morning", "Thank you. Thank you."],
        ["en"] * 4,
    )
    assert score.num_samples == 2 and score.wer == 0.0  # the probes are no reference words
    probes = [u for u in utterances if not u.reference.strip()]
    assert nonspeech_score(probes).as_dict() == {"clips": 2, "words": 5, "clips_with_words": 2}
    # a probe in a language written without spaces counts characters
    _, zh = score_corpus([""], ["谢谢观看"], ["zh"])
    assert nonspeech_score(zh).words == 4


# ----- one normalizer rule: the row's language, never the family ------------------------

#: English the two normalizers write differently ("mister ... $20" vs "mr ... twenty
#: dollars"), so a family scoring it with the other normalizer shows.
ENGLISH_ROWS = ["Mr. Smith paid twenty dollars.", "The colour is grey, isn't it?"]
FAMILY_BUILDERS = {
    "whisper": "asrtune.models.tiny:make_tiny_whisper",
    "parakeet_ctc": "asrtune.models.tiny_parakeet:make_tiny_parakeet_ctc",
    "parakeet_tdt": "asrtune.models.tiny_parakeet:make_tiny_parakeet_tdt",
    "qwen3_asr": "asrtune.models.tiny_qwen3_asr:make_tiny_qwen3_asr",
}


@pytest.fixture(scope="module")
def english_rows(tmp_path_factory: pytest.TempPathFactory) -> list:
    import soundfile as sf

    from asrtune.data.manifest import Row
    from tests.conftest import tone

    folder = tmp_path_factory.mktemp("english")
    rows = []
    for index, text in enumerate(ENGLISH_ROWS):
        path = folder / f"{index}.wav"
        sf.write(path, tone(1.0, 300 + 100 * index), 16000)
        rows.append(Row(id=str(index), audio_path=str(path), text=text, duration=1.0))
    return rows


@pytest.mark.parametrize("language", [None, "en"])
def test_the_same_english_rows_score_the_same_whatever_the_family(
    english_rows: list, tmp_path_factory: pytest.TempPathFactory, language: str | None
) -> None:
    """Rows are scored with the normalizer of their language (given, or the model's sole
    language); rows of unknown language with the multilingual one, in every family."""
    from dataclasses import replace

    from asrtune.evaluation import evaluate_rows, scoring_languages
    from asrtune.inference import DecodingOptions
    from asrtune.models import load_model
    from asrtune.models.family import _resolve

    rows = [replace(row, language=language) for row in english_rows]
    hypotheses = ["mister smith paid twenty dollars", "the color is gray isn't it"]
    normalized, wers = {}, {}
    for family, builder in FAMILY_BUILDERS.items():
        loaded = load_model(str(_resolve(builder)(tmp_path_factory.mktemp(family))))
        options = DecodingOptions(max_new_tokens=4)
        result = evaluate_rows(loaded, rows, options, progress=False)
        normalized[family] = [u.reference_normalized for u in result.utterances]
        languages = scoring_languages(loaded, rows, options.language)
        wers[family] = score_corpus([r.text for r in rows], hypotheses, languages)[0].wer
    expected = "mister smith paid $20" if language == "en" else "mr smith paid twenty dollars"
    assert {family: texts[0] for family, texts in normalized.items()} == dict.fromkeys(
        FAMILY_BUILDERS, expected
    )
    assert len(set(wers.values())) == 1, wers
