"""A character vocabulary built from training transcripts, for a CTC head made for it
(``asrtune train --new_vocabulary``).

The vocabulary follows ``Wav2Vec2CTCTokenizer``'s conventions (``vocab.json``): ``[PAD]``
first (id 0: the CTC blank, ``config.pad_token_id``), ``[UNK]`` second, then the word
delimiter ``|`` (only when the text has spaces: a script written without spaces gets none),
then every character of the normalized training text, sorted by code point. Tokens are
single characters, so ids are stable for the same text whatever the row order (every
process of a multi-process run builds the same vocabulary).

Normalization (:class:`VocabularyOptions`): Unicode NFC, then lowercase unless the case is
kept (``str.lower``, not ``casefold``: Greek's final ``ς`` stays), then punctuation and
symbols (Unicode categories P*, S*) dropped unless kept. Digits are kept and reported: a
model trained on "3" says "3", not "three". The labels of a model with a character
vocabulary are normalized from the vocabulary itself (:func:`label_text`), so the same
rule holds for the training rows, the eval rows and later fine-tunes of the result.

Pure text: no torch, no transformers except in :func:`make_tokenizer`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrtune.errors import AsrtuneError

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
WORD_DELIMITER = "|"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class VocabularyOptions:
    """How transcripts are normalized before their characters are collected:
    ``keep_case`` (else lowercased), ``keep_punctuation`` (else punctuation and symbols
    are dropped)."""

    keep_case: bool = False
    keep_punctuation: bool = False


def _is_punctuation_or_symbol(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def normalize_transcript(text: str, options: VocabularyOptions) -> str:
    """``text`` as the vocabulary sees it: NFC, lowercased unless ``keep_case``,
    punctuation and symbols dropped unless ``keep_punctuation``, runs of whitespace as one
    space, stripped."""
    text = unicodedata.normalize("NFC", text)
    if not options.keep_case:
        text = text.lower()
    if not options.keep_punctuation:
        text = "".join(ch for ch in text if not _is_punctuation_or_symbol(ch))
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class CharVocabulary:
    """The characters of a training set (sorted, no whitespace), whether its text has
    spaces (then ``|`` stands for them), and what the report says about it: ``digits`` and
    ``symbols`` kept, ``dropped`` (punctuation/symbols removed by normalization, with
    counts)."""

    characters: tuple[str, ...]
    has_spaces: bool
    digits: str = ""
    symbols: str = ""
    dropped: tuple[tuple[str, int], ...] = ()

    def token_to_id(self) -> dict[str, int]:
        """``vocab.json``: ``[PAD]`` 0 (the blank), ``[UNK]`` 1, ``|`` 2 when the text has
        spaces, then the characters."""
        tokens = [*SPECIAL_TOKENS, *([WORD_DELIMITER] if self.has_spaces else []), *self.characters]
        return {token: i for i, token in enumerate(tokens)}

    @property
    def size(self) -> int:
        return len(self.token_to_id())

    def report(self) -> str:
        """One paragraph for the log: size, the characters, digits, symbols, dropped."""
        lines = [
            f"new vocabulary: {self.size} tokens ({len(self.characters)} characters"
            + (", '|' for spaces" if self.has_spaces else ", no word delimiter: no spaces")
            + ", [PAD] as the CTC blank, [UNK])",
            f"characters: {''.join(self.characters)}",
        ]
        if self.digits:
            lines.append(f"digits kept (the model will write them as digits): {self.digits}")
        if self.symbols:
            lines.append(f"punctuation/symbols kept: {self.symbols}")
        if self.dropped:
            shown = ", ".join(f"{ch!r} x{n}" for ch, n in self.dropped[:20])
            lines.append(f"dropped by normalization: {shown}")
        return "\n".join(lines)


def build_vocabulary(texts: Iterable[str], options: VocabularyOptions) -> CharVocabulary:
    """The :class:`CharVocabulary` of ``texts`` after :func:`normalize_transcript`; an
    AsrtuneError when no text has a character."""
    kept: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for text in texts:
        raw = unicodedata.normalize("NFC", text or "")
        normalized = normalize_transcript(raw, options)
        kept.update(normalized)
        if not options.keep_punctuation:
            dropped.update(ch for ch in raw if _is_punctuation_or_symbol(ch))
    has_spaces = " " in kept
    characters = tuple(sorted(ch for ch in kept if not ch.isspace()))
    if not characters:
        raise AsrtuneError("--new_vocabulary: the training transcripts hold no characters")
    return CharVocabulary(
        characters=characters,
        has_spaces=has_spaces,
        digits="".join(ch for ch in characters if unicodedata.category(ch)[0] == "N"),
        symbols="".join(ch for ch in characters if _is_punctuation_or_symbol(ch)),
        dropped=tuple(dropped.most_common()),
    )


def label_text(text: str, vocab: Mapping[str, int]) -> str:
    """``text`` normalized as a character vocabulary ``vocab`` (token → id) implies:
    NFC; lowercased when the vocabulary has lowercase letters and no uppercase ones
    (uppercased in the opposite case, as English wav2vec2 checkpoints are); punctuation
    and symbols it lacks dropped; spaces kept only when it has the word delimiter. Letters
    and digits it lacks stay (they become ``[UNK]``, which training reports)."""
    text = unicodedata.normalize("NFC", text)
    letters = [t for t in vocab if len(t) == 1 and t.isalpha()]
    has_lower = any(t.islower() for t in letters)
    has_upper = any(t.isupper() for t in letters)
    if has_lower and not has_upper:
        text = text.lower()
    elif has_upper and not has_lower:
        text = text.upper()
    text = "".join(ch for ch in text if ch in vocab or not _is_punctuation_or_symbol(ch))
    text = _SPACES.sub(" ", text).strip()
    return text if WORD_DELIMITER in vocab else text.replace(" ", "")


def missing_characters(texts: Iterable[str], vocab: Mapping[str, int]) -> Counter[str]:
    """How often each character of ``texts`` (after :func:`label_text`) has no token in
    ``vocab``: what the model could never write."""
    missing: Counter[str] = Counter()
    for text in texts:
        missing.update(ch for ch in label_text(text or "", vocab) if ch != " " and ch not in vocab)
    return missing


def describe_missing(missing: Counter[str], where: str) -> str:
    """One line naming the characters of ``where`` that are missing, most frequent first."""
    shown = ", ".join(f"{ch!r} x{n}" for ch, n in missing.most_common(20))
    more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
    return f"{len(missing)} character(s) of {where} are not in the vocabulary: {shown}{more}"


def write_vocab_json(vocabulary: CharVocabulary, folder: str | Path) -> Path:
    """Write ``folder/vocab.json`` (UTF-8, characters as they are); returns its path."""
    path = Path(folder) / "vocab.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(vocabulary.token_to_id(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return path


def make_tokenizer(vocabulary: CharVocabulary, folder: str | Path) -> Any:
    """A ``Wav2Vec2CTCTokenizer`` over ``vocabulary``, its ``vocab.json`` written to
    ``folder``: ``[PAD]`` the pad token (the blank), ``[UNK]``, ``|`` the word delimiter
    (None for a script without spaces), no begin/end tokens, no lowercasing of its own
    (labels are normalized by :func:`label_text`)."""
    from transformers import Wav2Vec2CTCTokenizer

    path = write_vocab_json(vocabulary, folder)
    return Wav2Vec2CTCTokenizer(
        str(path),
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        word_delimiter_token=WORD_DELIMITER if vocabulary.has_spaces else None,
        bos_token=None,
        eos_token=None,
        do_lower_case=False,
    )
