"""What a row must fit to be trained on a loaded model: the admission rule's model checks.

:class:`ModelFit` implements :class:`asrtune.data.admission.RowFit` (languages, vocabulary
and limits), so the rule itself lives in data/ without importing model code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from asrtune.data.admission import UNKNOWN_TOKENS
from asrtune.data.manifest import Row
from asrtune.models import Limits, LoadedModel, over_limit_reason, row_labels


@dataclass(frozen=True)
class ModelFit:
    """What a row must fit: ``loaded``'s languages, vocabulary and limits for ``task``.

    ``timestamps``: the label budget counts the two timestamp tokens around the text
    (None: when the family trains some windows with timestamps by default).
    """

    loaded: LoadedModel
    task: str = "transcribe"
    timestamps: bool | None = None
    allow_unknown_tokens: bool = False

    @cached_property
    def limits(self) -> Limits:
        return self.loaded.adapter.limits(self.loaded)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.loaded.processor, "tokenizer", self.loaded.processor)

    @cached_property
    def unknown_id(self) -> int | None:
        """The tokenizer's unknown token, unless it doubles as end-of-text or padding
        (Whisper's), which plain text cannot encode to."""
        unk = getattr(self.tokenizer, "unk_token_id", None)
        ends = (getattr(self.tokenizer, name, None) for name in ("eos_token_id", "pad_token_id"))
        return None if unk in set(ends) else unk

    def unknown_characters(self, text: str) -> str:
        """The characters of ``text`` the tokenizer encodes to its unknown token, sorted."""
        encode = self.tokenizer.encode
        return "".join(
            sorted(
                ch
                for ch in set(text)
                if not ch.isspace() and self.unknown_id in encode(ch, add_special_tokens=False)
            )
        )

    def labels(self, row: Row) -> list[int]:
        """``row``'s label tokens (timestamp tokens counted as :attr:`timestamps` says);
        AsrtuneError for a language the model does not know, or none where it needs one."""
        text = (row.text or "").strip()
        return row_labels(self.loaded, text, row.language, self.task, row.duration, self.timestamps)

    def unknown_note(self, text: str, labels: list[int]) -> str | None:
        """What is wrong with labels holding the unknown token, or None when they hold none."""
        count = labels.count(self.unknown_id) if self.unknown_id is not None else 0
        if not count:
            return None
        missing = self.unknown_characters(text)
        which = f" for {missing!r}" if missing else ""
        return f"{count} {UNKNOWN_TOKENS}: the tokenizer has no token{which}"

    def limit_reason(self, seconds: float, num_tokens: int) -> str | None:
        return over_limit_reason(self.limits, seconds, num_tokens)
