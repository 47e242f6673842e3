"""Bundled phrase lists to read aloud in the UI: ``<code>.txt``, one phrase per line.

Lines starting with ``#`` are comments; blank lines are skipped. Each list holds at least
20 everyday sentences with numbers, times and questions, so a short recording session
covers the words a help-desk or note-taking model meets.
"""

from __future__ import annotations

from importlib import resources

#: Language code → name shown in the UI, for the bundled lists.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "fr": "Français",
    "de": "Deutsch",
    "es": "Español",
    "it": "Italiano",
    "pt": "Português",
    "nl": "Nederlands",
    "hi": "हिन्दी (Hindi)",
}


def parse_phrases(text: str) -> list[str]:
    """Phrases of a text: one per non-blank line, ``#`` comment lines left out, stripped."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def bundled_phrases(language: str) -> list[str]:
    """The bundled list for ``language`` (a code of :data:`LANGUAGES`); [] for other codes."""
    if language not in LANGUAGES:
        return []
    text = resources.files(__name__).joinpath(f"{language}.txt").read_text(encoding="utf-8")
    return parse_phrases(text)
