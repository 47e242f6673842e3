"""Whether a model family knows a language, asked before any model is loaded.

Each family's adapter turns a language (``en``, ``English``...) into what its model reads
with a function named in :data:`LANGUAGE_FUNCTIONS` that raises
:class:`~asrtune.errors.AsrtuneError` for a language it does not know; a family without one
has no language input (Parakeet), so every language is fine for it. The UI and the data
check ask here, so a row's language is refused where it is typed, not when a run fails.
"""

from __future__ import annotations

from collections.abc import Callable

from asrtune.errors import AsrtuneError
from asrtune.models import get_family

#: Names of the adapter functions that map a language to the model's own form, in order.
LANGUAGE_FUNCTIONS = ("language_code", "language_name")


def _language_function(family: str) -> Callable[[str], str] | None:
    adapter = get_family(family)
    for name in LANGUAGE_FUNCTIONS:
        function = getattr(adapter, name, None)
        if callable(function):
            return function
    return None


def language_problem(family: str, language: str | None) -> str | None:
    """Why models of ``family`` (a registered name) cannot take ``language``, or None when
    they can (an empty language: the model's default, always fine)."""
    if not (language or "").strip():
        return None
    function = _language_function(family)
    if function is None:
        return None
    try:
        function(str(language))
    except AsrtuneError as exc:
        return str(exc)
    return None
