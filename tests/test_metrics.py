"""WER/CER against hand-computed values; normalizers."""

from __future__ import annotations

import pytest

from asrtune.metrics import (
    char_counts,
    normalize_multilingual,
    normalizer_for,
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
        ["Hello, World! The colour is grey."], ["hello world the color is gray"]
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
