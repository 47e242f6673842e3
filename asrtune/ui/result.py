"""What a button's action reports back to the page: a :class:`Result`, never a string the
page has to read a "✓" or "✗" out of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Result:
    """``ok``: whether the action did what was asked; ``message``: one line for the page
    (no mark); ``details``: what the page needs besides (a run id, a folder...)."""

    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def done(cls, message: str, **details: Any) -> Result:
        return cls(True, message, details)

    @classmethod
    def refused(cls, message: str, **details: Any) -> Result:
        return cls(False, message, details)

    @property
    def text(self) -> str:
        """The message as the page shows it, marked ✓ or ✗."""
        return f"{'✓' if self.ok else '✗'} {self.message}"
