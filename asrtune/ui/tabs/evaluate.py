"""The Evaluate tab: base model vs fine-tuned on the run's eval split (computed during the
run) or on another manifest, with the worst utterances' word diffs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from asrtune.ui import actions
from asrtune.ui.models import ModelCache
from asrtune.ui.project import Project

if TYPE_CHECKING:
    from asrtune.ui.page import Page


@dataclass(frozen=True)
class EvaluateTab:
    """The Evaluate tab's components (``tab``: the tab itself, refreshed when shown)."""

    tab: gr.Tab
    eval_manifest: gr.Textbox
    eval_btn: gr.Button
    compare_md: gr.Markdown
    worst_html: gr.HTML


def layout(tab: gr.Tab) -> EvaluateTab:
    """Lay out the Evaluate tab (inside ``tab``)."""
    gr.Markdown(
        "Base model vs fine-tuned on the run's eval split (computed during the run), or on "
        "another manifest."
    )
    with gr.Row():
        manifest = gr.Textbox(label="Another manifest to evaluate on (optional)", scale=4)
        button = gr.Button("Evaluate", scale=1, elem_id="evaluate")
    compare = gr.Markdown(elem_id="eval-compare")
    worst = gr.HTML(elem_id="eval-worst")
    return EvaluateTab(tab, manifest, button, compare, worst)


def results_updates(tab: EvaluateTab, project: Project, run_id: str | None) -> dict:
    """The run's comparison table and worst utterances."""
    table, worst = actions.evaluation_view(project, run_id)
    return {tab.compare_md: table, tab.worst_html: worst}


def wire(page: Page, project: Project, cache: ModelCache) -> None:
    """Connect the Evaluate tab's events to :mod:`asrtune.ui.actions`."""
    tab = page.evaluate
    tab.tab.select(
        lambda run_id: actions.evaluation_view(project, run_id),
        page.run_pick,
        [tab.compare_md, tab.worst_html],
    )
    tab.eval_btn.click(
        lambda run_id, manifest: actions.evaluate_run(project, cache, run_id, manifest),
        [page.run_pick, tab.eval_manifest],
        [tab.compare_md, tab.worst_html],
        concurrency_id="heavy",
        concurrency_limit=1,
    )
