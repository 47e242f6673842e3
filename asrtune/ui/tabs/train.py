"""The Train tab: the model and the form, Start/Stop, and the selected run's progress, loss,
evaluations and log, polled by a 1-s timer that only sends what changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from asrtune.ui import actions, jobs, render
from asrtune.ui.models import (
    DEFAULT_SIZE,
    FAMILY_CHOICES,
    FAMILY_NAMES,
    FREEZE_INFO,
    LOCAL,
    SIZES,
    describe_model,
)
from asrtune.ui.project import Project

if TYPE_CHECKING:
    from asrtune.ui.page import Page


@dataclass(frozen=True)
class TrainTab:
    """The Train tab's components."""

    summary_md: gr.Markdown
    family: gr.Dropdown
    size: gr.Dropdown
    folder: gr.Textbox
    tiny_row: gr.Row
    tiny_btns: dict[str, gr.Button]  # registered family name → its Make-a-tiny button
    method: gr.Radio
    epochs: gr.Number
    lr: gr.Number
    batch: gr.Number
    lora_r: gr.Number
    lora_alpha: gr.Number
    freeze: gr.Checkbox
    eval_fraction: gr.Slider
    logging_steps: gr.Number
    max_steps: gr.Number
    report_to: gr.Dropdown
    baseline: gr.Checkbox
    guard: gr.Textbox
    max_guard: gr.Number
    extra: gr.Textbox
    start_btn: gr.Button
    stop_btn: gr.Button
    train_msg: gr.Markdown
    about_md: gr.Markdown
    progress: gr.HTML
    loss_plot: gr.LinePlot
    evals_df: gr.Dataframe
    log_box: gr.HTML
    timer: gr.Timer

    @property
    def form_inputs(self) -> list[Any]:
        """The inputs of :func:`asrtune.ui.actions.form_values`, in its order."""
        return [self.family, self.size, self.folder, self.method, self.epochs, self.lr,
                self.batch, self.lora_r, self.lora_alpha, self.freeze, self.eval_fraction,
                self.logging_steps, self.max_steps, self.report_to, self.baseline, self.guard,
                self.max_guard, self.extra]  # fmt: skip

    @property
    def run_view(self) -> list[Any]:
        """What the timer refreshes: the run's view."""
        return [self.progress, self.loss_plot, self.evals_df, self.log_box, self.about_md,
                self.stop_btn]  # fmt: skip


def _model_row() -> dict[str, Any]:
    parts: dict[str, Any] = {}
    with gr.Row():
        parts["family"] = gr.Dropdown(
            label="Model family", choices=list(FAMILY_CHOICES), elem_id="family"
        )
        parts["size"] = gr.Dropdown(label="Size", choices=[])
        parts["folder"] = gr.Textbox(
            label="Model folder (a local checkpoint or asrtune output)",
            visible=False,
            elem_id="model-folder",
        )
    with gr.Row(visible=False) as parts["tiny_row"]:
        # one button per registered family; the first (default) family's is #make-tiny
        buttons: dict[str, gr.Button] = {}
        for label, name in FAMILY_NAMES.items():
            first = not buttons
            buttons[name] = gr.Button(
                f"Make a tiny random {label}" + (" (smoke runs)" if first else ""),
                elem_id="make-tiny" if first else f"make-tiny-{name}",
            )
        parts["tiny_btns"] = buttons
    return parts


def _form() -> dict[str, Any]:
    parts: dict[str, Any] = {}
    with gr.Row():
        parts["method"] = gr.Radio(
            label="Method", choices=[("Full fine-tuning", "full"), ("LoRA", "lora")]
        )
        parts["epochs"] = gr.Number(label="Epochs", elem_id="epochs", minimum=0)
        parts["lr"] = gr.Number(label="Learning rate", info=actions.LEARNING_RATE_HINT)
        parts["batch"] = gr.Number(label="Batch size (30-s windows)", precision=0, minimum=1)
    with gr.Row():
        parts["lora_r"] = gr.Number(label="LoRA r", precision=0, visible=False)
        parts["lora_alpha"] = gr.Number(label="LoRA alpha", precision=0, visible=False)
        parts["freeze"] = gr.Checkbox(
            label="Freeze the audio encoder", info=f"What still trains: {FREEZE_INFO}"
        )
    with gr.Accordion("More options", open=False):
        with gr.Row():
            parts["eval_fraction"] = gr.Slider(
                label="Recordings held out for eval",
                minimum=0,
                maximum=0.5,
                step=0.05,
                value=actions.FORM_DEFAULTS["eval_fraction"],
            )
            parts["logging_steps"] = gr.Number(
                label="Log every N steps", precision=0, elem_id="logging-steps"
            )
            parts["max_steps"] = gr.Number(label="Max steps (-1: by epochs)", precision=0)
        with gr.Row():
            parts["report_to"] = gr.Dropdown(
                label="Tracking", choices=["trackio", "none"], elem_id="report-to"
            )
            parts["baseline"] = gr.Checkbox(label="Evaluate the base model first (baseline WER)")
        with gr.Row():
            parts["guard"] = gr.Textbox(
                label="Guard sets: NAME=SOURCE, one per line (general speech the model must "
                "not forget; measured against the base model at every evaluation)",
                lines=2,
                elem_id="guard-sets",
                scale=3,
            )
            parts["max_guard"] = gr.Number(
                label="Max guard regression (WER points as a fraction, e.g. 0.02; empty: none)",
                elem_id="max-guard",
            )
        parts["extra"] = gr.Textbox(
            label="More asrtune train options (YAML, e.g. 'warmup_steps: 0.2')", lines=3
        )
    return parts


def _run_section() -> dict[str, Any]:
    parts: dict[str, Any] = {}
    with gr.Row():
        parts["start_btn"] = gr.Button("Start training", variant="primary", elem_id="start")
        parts["stop_btn"] = gr.Button("Stop", interactive=False, elem_id="stop")
    parts["train_msg"] = gr.Markdown(elem_id="train-msg")
    parts["about_md"] = gr.Markdown(elem_id="run-about")
    parts["progress"] = gr.HTML(render.progress_html({}), elem_id="train-progress")
    parts["loss_plot"] = gr.LinePlot(
        value=render.loss_frame([]),
        x="step",
        y="loss",
        title="Training loss",
        height=260,
        elem_id="loss-plot",
    )
    parts["evals_df"] = gr.Dataframe(
        value=render.eval_frame([]),
        label="Evaluations (WER as it arrives)",
        interactive=False,
        wrap=True,
        elem_id="evals",
    )
    gr.Markdown("Log")
    parts["log_box"] = gr.HTML(render.log_html(""), elem_id="train-log")
    parts["timer"] = gr.Timer(1.0)
    return parts


def layout() -> TrainTab:
    """Lay out the Train tab (inside a ``gr.Tab``)."""
    parts: dict[str, Any] = {"summary_md": gr.Markdown(elem_id="train-data")}
    parts.update(_model_row())
    parts.update(_form())
    parts.update(_run_section())
    return TrainTab(**parts)


# ----- state → component updates ------------------------------------------------------


def settings_updates(tab: TrainTab, project: Project) -> dict:
    """The Train form as the project remembers it."""
    form = actions.saved_form(project)
    family, size, folder = describe_model(form["model"])
    lora = bool(form["lora"])
    return {
        tab.family: family,
        tab.size: gr.update(
            choices=list(SIZES.get(family, {})), value=size, visible=family != LOCAL
        ),
        tab.folder: gr.update(value=folder, visible=family == LOCAL),
        tab.tiny_row: gr.update(visible=family == LOCAL),
        tab.method: "lora" if lora else "full",
        tab.epochs: form["num_train_epochs"],
        tab.lr: form["learning_rate"],
        tab.batch: form["per_device_train_batch_size"],
        tab.lora_r: gr.update(value=form["lora_r"], visible=lora),
        tab.lora_alpha: gr.update(value=form["lora_alpha"], visible=lora),
        tab.freeze: form["freeze_encoder"],
        tab.eval_fraction: form["eval_fraction"],
        tab.logging_steps: form["logging_steps"],
        tab.max_steps: form["max_steps"],
        tab.report_to: form["report_to"],
        tab.baseline: form["baseline"],
        tab.guard: form["guard"],
        tab.max_guard: form["max_guard_regression"],
        tab.extra: form["extra"],
    }


def view_updates(tab: TrainTab, project: Project, run_id: str | None) -> dict:
    """The selected run's progress, loss, evaluations, log and description; Stop only
    while it runs."""
    view = actions.run_view(project, run_id)
    run_dir = project.run_dir(run_id)
    running = run_dir is not None and (jobs.read_status(run_dir).get("state") in jobs.ACTIVE_STATES)
    return {
        tab.progress: view["progress"],
        tab.loss_plot: view["loss"],
        tab.evals_df: view["evals"],
        tab.log_box: view["log"],
        tab.about_md: view["about"],
        tab.stop_btn: gr.update(interactive=running, variant="stop" if running else "secondary"),
    }


# ----- events ----------------------------------------------------------------------------


def _wire_model(page: Page, project: Project) -> None:
    tab = page.train

    def on_family(family: str) -> dict:
        return {
            tab.size: gr.update(
                choices=list(SIZES.get(family, {})),
                value=DEFAULT_SIZE.get(family),
                visible=family != LOCAL,
            ),
            tab.folder: gr.update(visible=family == LOCAL),
            tab.tiny_row: gr.update(visible=family == LOCAL),
            tab.train_msg: "",  # a message about the previous choice no longer applies
        }

    tab.family.input(on_family, tab.family, [tab.size, tab.folder, tab.tiny_row, tab.train_msg])

    def tiny(kind: str) -> Any:
        def handler() -> dict:
            result = actions.make_tiny(project, kind)
            out: dict = {tab.train_msg: result.text}
            if result.ok:
                out[tab.folder] = gr.update(value=result.details["folder"], visible=True)
            return out

        return handler

    for name, button in tab.tiny_btns.items():
        button.click(tiny(name), None, [tab.folder, tab.train_msg])

    def on_method(choice: str) -> dict:
        visible = choice == "lora"
        return {tab.lora_r: gr.update(visible=visible), tab.lora_alpha: gr.update(visible=visible)}

    tab.method.change(on_method, tab.method, [tab.lora_r, tab.lora_alpha])


def _wire_runs(page: Page, project: Project) -> None:
    tab, sources = page.train, page.data.source_inputs

    def on_start(*values: Any) -> dict:
        actions.save_source(project, *values[-len(sources) :])
        form = actions.form_values(*values[: -len(sources)])
        result = actions.start_training(project, form)
        out: dict = {tab.train_msg: result.text, tab.summary_md: actions.data_summary(project)}
        shown = result.details.get("run_id") or result.details.get("busy")
        if shown:  # the new run, or the one still training that refused this start
            out[page.run_pick] = gr.update(choices=actions.run_choices(project), value=shown)
        return out

    tab.start_btn.click(
        on_start, [*tab.form_inputs, *sources], [tab.train_msg, tab.summary_md, page.run_pick]
    )
    tab.stop_btn.click(
        lambda run_id: actions.stop_training(project, run_id).text, page.run_pick, tab.train_msg
    )

    view = tab.run_view

    def on_tick(run_id: str | None, last: str, shown_choices: list) -> Any:
        """The run's view when it changed; the run list when a label changed (a state, a
        best score, a run started in another browser tab)."""
        choices = [list(choice) for choice in actions.run_choices(project)]
        pick = (
            [gr.skip(), gr.skip()]
            if choices == shown_choices
            else [gr.update(choices=[tuple(c) for c in choices]), choices]
        )
        signature = actions.run_signature(project, run_id)
        if signature == last:  # nothing changed: send nothing
            return [gr.skip()] * (len(view) + 1) + pick
        updates = view_updates(tab, project, run_id)
        return [updates[component] for component in view] + [signature] + pick

    tab.timer.tick(
        on_tick,
        [page.run_pick, page.view_sig, page.shown_choices],
        [*view, page.view_sig, page.run_pick, page.shown_choices],
        show_progress="hidden",
        concurrency_limit=None,
        api_visibility="private",
    )


def wire(page: Page, project: Project) -> None:
    """Connect the Train tab's events to :mod:`asrtune.ui.actions`."""
    _wire_model(page, project)
    _wire_runs(page, project)
