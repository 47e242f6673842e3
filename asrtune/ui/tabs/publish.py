"""The Publish tab: push the model (with its card), the recordings as a dataset, and the
demo app, each with a dry run. The token is an input of each click and nothing else: never
stored, never an API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from asrtune.ui import actions
from asrtune.ui.project import Project

if TYPE_CHECKING:
    from asrtune.ui.page import Page

_PRIVATE = {"api_visibility": "private"}


@dataclass(frozen=True)
class PublishTab:
    """The Publish tab's components."""

    token: gr.Textbox
    model_repo: gr.Textbox
    mode: gr.Radio
    dataset_repo: gr.Textbox
    private: gr.Checkbox
    dry_run: gr.Checkbox
    push_model_btn: gr.Button
    push_data_btn: gr.Button
    space: gr.Textbox
    demo_btn: gr.Button
    publish_msg: gr.Markdown
    card_md: gr.Markdown


def layout() -> PublishTab:
    """Lay out the Publish tab (inside a ``gr.Tab``)."""
    parts: dict[str, Any] = {
        "token": gr.Textbox(
            label="Hugging Face token (write access)",
            type="password",
            info="Used for this upload only: never saved (not to disk, logs or the project).",
            elem_id="hf-token",
        )
    }
    with gr.Row():
        parts["model_repo"] = gr.Textbox(
            label="Model repository (namespace/name)", elem_id="model-repo"
        )
        parts["mode"] = gr.Radio(
            label="Upload",
            choices=["auto", "adapter", "merged"],
            value="auto",
            info="LoRA runs: the adapter or a merged model",
        )
    with gr.Row():
        parts["dataset_repo"] = gr.Textbox(label="Dataset repository (optional)")
        parts["private"] = gr.Checkbox(label="Private repositories", value=False)
        parts["dry_run"] = gr.Checkbox(
            label="Dry run: write the folders, upload nothing (all three buttons)",
            value=False,
            elem_id="dry-run",
        )
    with gr.Row():
        parts["push_model_btn"] = gr.Button("Push model", variant="primary", elem_id="push-model")
        parts["push_data_btn"] = gr.Button("Push dataset (the run's recordings)")
    with gr.Row():
        parts["space"] = gr.Textbox(
            label="Demo Space (optional: namespace/name to upload to)", elem_id="space"
        )
        parts["demo_btn"] = gr.Button("Create demo app", elem_id="demo-app")
    parts["publish_msg"] = gr.Markdown(elem_id="publish-msg")
    parts["card_md"] = gr.Markdown(elem_id="model-card")
    return PublishTab(**parts)


def settings_updates(tab: PublishTab, project: Project) -> dict:
    """The repositories and the Dry run box as the project remembers them (never a token)."""
    settings = project.settings()
    return {
        tab.model_repo: settings["model_repo"],
        tab.dataset_repo: settings["dataset_repo"],
        tab.space: settings["space_repo"],
        tab.dry_run: settings["publish_dry_run"],
    }


def wire(page: Page, project: Project) -> None:
    """Connect the Publish tab's buttons to :mod:`asrtune.ui.actions`."""
    tab = page.publish

    def on_push_model(run_id: str | None, *values: Any) -> tuple[str, Any]:
        result = actions.publish_model(project, run_id, *values)
        dry_run = result.ok and result.details.get("dry_run")  # the card just written
        return result.text, actions.card_preview(project, run_id) if dry_run else gr.update()

    model_inputs = [page.run_pick, tab.token, tab.model_repo, tab.private, tab.mode,
                    tab.dataset_repo, tab.dry_run]  # fmt: skip
    tab.push_model_btn.click(
        on_push_model,
        model_inputs,
        [tab.publish_msg, tab.card_md],
        **_PRIVATE,
    )
    tab.push_data_btn.click(
        lambda *values: actions.publish_dataset(project, *values).text,
        [page.run_pick, tab.token, tab.dataset_repo, tab.private, tab.dry_run],
        tab.publish_msg,
        **_PRIVATE,
    )
    tab.demo_btn.click(
        lambda *values: actions.publish_demo(project, *values).text,
        [page.run_pick, tab.token, tab.model_repo, tab.space, tab.private, tab.dry_run],
        tab.publish_msg,
        **_PRIVATE,
    )
