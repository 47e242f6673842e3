"""Data files shipped with asrtune (see ``NOTICE`` in this folder for origins and licenses)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

__all__ = ["english_spelling_mapping"]


@cache
def _load_spelling() -> dict[str, str]:
    text = resources.files(__name__).joinpath("english_spelling.json").read_text(encoding="utf-8")
    mapping = json.loads(text)
    return {str(k): str(v) for k, v in mapping.items()}


def english_spelling_mapping() -> dict[str, str]:
    """British -> American spelling map from openai/whisper (``english.json``, MIT license).

    This is what ``EnglishTextNormalizer(english_spelling_mapping())`` expects (hub Whisper
    tokenizers ship the same data as ``normalizer.json``). About 1,700 lowercase word pairs,
    e.g. ``"colour" -> "color"``. The file is read once; each call returns a fresh copy so
    callers cannot corrupt the cache.
    """
    return dict(_load_spelling())
