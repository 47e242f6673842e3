"""The Evaluate tab: base model vs fine-tuned on the run's eval split (computed during the
run) or on another manifest, with the worst utterances' word diffs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from asrtune.ui import actions
from asrtune.ui.models import ModelCache
from asrtune.ui.project import Project
from asrtune.ui.tabs import data

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
    terms_box: gr.Textbox
    record_terms_btn: gr.Button
    terms_info: gr.Markdown


def layout(tab: gr.Tab) -> EvaluateTab:
    """Lay out the Evaluate tab (inside ``tab``)."""
    gr.Markdown(
        "Base model vs fine-tuned on the run's eval split (computed during the run), or on "
        "another manifest."
    )
    with gr.Row():
        manifest = gr.Textbox(label="Another manifest to evaluate on (optional)", scale=4)
        button = gr.Button("Evaluate", scale=1, elem_id="evaluate")
    terms = gr.Textbox(
        label="Your terms (optional): one per line; alternative spellings after a tab, "
        "separated by |",
        lines=3,
        elem_id="eval-terms",
    )
    compare = gr.Markdown(elem_id="eval-compare")
    with gr.Row():
        record = gr.Button("Record the missed terms", scale=1, elem_id="record-terms")
        info = gr.Markdown(elem_id="terms-info")
    worst = gr.HTML(elem_id="eval-worst")
    return EvaluateTab(tab, manifest, button, compare, worst, terms, record, info)


def settings_updates(tab: EvaluateTab, project: Project) -> dict:
    """The terms the project remembers for this tab."""
    return {tab.terms_box: project.settings()["eval_terms"]}


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
        lambda run_id, manifest, terms: actions.evaluate_run(
            project, cache, run_id, manifest, terms
        ),
        [page.run_pick, tab.eval_manifest, tab.terms_box],
        [tab.compare_md, tab.worst_html],
        concurrency_id="heavy",
        concurrency_limit=1,
    )

    phrase = (page.data.phrase_html, page.data.rec_text)

    def on_record(run_id: str | None) -> dict:
        result = actions.record_missed_terms(project, run_id)
        shown = dict(zip(phrase, actions.phrase_view(project), strict=True))
        return {tab.terms_info: result.text, **data.settings_updates(page.data, project), **shown}

    outputs = [tab.terms_info, *data.settings_updates(page.data, project), *phrase]
    tab.record_terms_btn.click(on_record, page.run_pick, outputs)
