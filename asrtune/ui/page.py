"""The whole page's components: the run list above the tabs and each tab's own
(:mod:`asrtune.ui.tabs`), in one typed dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from asrtune.ui.tabs.data import DataTab
from asrtune.ui.tabs.evaluate import EvaluateTab
from asrtune.ui.tabs.publish import PublishTab
from asrtune.ui.tabs.train import TrainTab
from asrtune.ui.tabs.try_it import TryTab


@dataclass(frozen=True)
class Page:
    """``run_pick``: the run every tab after Data works on; ``view_sig``: what the page
    shows of it (the timer sends nothing while it is unchanged); ``shown_choices``: the run
    list's (label, id) pairs on the page."""

    run_pick: gr.Dropdown
    refresh_btn: gr.Button
    view_sig: gr.State
    shown_choices: gr.State
    data: DataTab
    train: TrainTab
    evaluate: EvaluateTab
    try_it: TryTab
    publish: PublishTab

    @property
    def dataset(self) -> list[Any]:
        """What :func:`asrtune.ui.tabs.data.dataset_updates` refreshes."""
        data = self.data
        return [data.rows_df, data.row_pick, data.row_text, data.row_language, data.row_audio,
                data.phrase_html, data.rec_text, self.train.summary_md,
                data.check_md]  # fmt: skip
