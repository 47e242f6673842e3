"""The Try it tab: one clip, recorded or uploaded, transcribed by the run's fine-tuned
model or its base model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from asrtune.ui import actions
from asrtune.ui.models import ModelCache
from asrtune.ui.project import Project

if TYPE_CHECKING:
    from asrtune.ui.page import Page

#: Transcriptions that may run at once (two users never wait on each other).
TRANSCRIBE_CONCURRENCY = 4


@dataclass(frozen=True)
class TryTab:
    """The Try it tab's components."""

    which: gr.Radio
    try_audio: gr.Audio
    try_btn: gr.Button
    try_out: gr.Textbox
    try_info: gr.Markdown
    hotwords: gr.Textbox


def layout() -> TryTab:
    """Lay out the Try it tab (inside a ``gr.Tab``)."""
    return TryTab(
        which=gr.Radio(
            choices=[("Fine-tuned model (the selected run)", "finetuned"), ("Base model", "base")],
            value="finetuned",
            show_label=False,
        ),
        try_audio=gr.Audio(
            sources=["upload", "microphone"],
            type="filepath",
            label="Upload or speak",
            elem_id="try-audio",
        ),
        try_btn=gr.Button("Transcribe", variant="primary", elem_id="transcribe"),
        try_out=gr.Textbox(label="Transcription", lines=3, elem_id="try-output"),
        try_info=gr.Markdown(elem_id="try-info"),
        hotwords=gr.Textbox(
            label="Hotwords (optional): terms to bias decoding toward, one per line",
            lines=2,
            elem_id="try-hotwords",
        ),
    )


def wire(page: Page, project: Project, cache: ModelCache) -> None:
    """Connect the Transcribe button to :func:`asrtune.ui.actions.transcribe_clip`."""
    tab = page.try_it

    def on_transcribe(run_id: str | None, which: str, audio: str | None, hotwords: str) -> tuple:
        return actions.transcribe_clip(project, cache, run_id, which, audio, hotwords)

    tab.try_btn.click(
        on_transcribe,
        [page.run_pick, tab.which, tab.try_audio, tab.hotwords],
        [tab.try_out, tab.try_info],
        concurrency_id="transcribe",
        concurrency_limit=TRANSCRIBE_CONCURRENCY,
        api_name="transcribe",
    )
