"""The Gradio page of ``asrtune ui``: data → train → evaluate → try → publish.

This module only lays out the components (one function per tab) and wires their events to
:mod:`asrtune.ui.actions`, which does the work through the library. All state lives in the
project folder (:mod:`asrtune.ui.project`, :mod:`asrtune.ui.jobs`); a page load reads it back,
so a reload, a second browser tab or a restarted server shows the same thing. Training runs
in a worker process, polled by a 1-s timer that only sends what changed.

Concurrency: events share the queue with a default limit of 2; transcription has its own
limit of :data:`TRANSCRIBE_CONCURRENCY` (two users never wait on each other), the progress
timer has none, and data checks and evaluations share one slot ("heavy").
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from asrtune.errors import AsrtuneError
from asrtune.ui import actions, jobs, render
from asrtune.ui.models import (
    DEFAULT_SIZE,
    FAMILY_CHOICES,
    FAMILY_NAMES,
    LOCAL,
    SIZES,
    ModelCache,
    describe_model,
    resolve_model,
)
from asrtune.ui.phrases import LANGUAGES, parse_phrases
from asrtune.ui.project import Project

TRANSCRIBE_CONCURRENCY = 4
DEFAULT_MAX_FILE_SIZE = "200mb"

CSS = """
#run-state .bar { height: 14px; background: var(--neutral-200); border-radius: 7px;
  overflow: hidden; margin: 6px 0; }
#run-state .fill { height: 100%; background: var(--color-accent); transition: width .4s; }
#run-state .state-done { color: #15803d; } #run-state .state-failed { color: #b91c1c; }
#run-state .state-stopped { color: #b45309; } #run-state .run-error { color: #b91c1c;
  white-space: pre-wrap; margin-top: 4px; }
#phrase .phrase-text { font-size: 1.5em; font-weight: 600; margin: .3em 0; }
#phrase .phrase-meta { color: var(--body-text-color-subdued); }
.worst .utt { border-bottom: 1px solid var(--border-color-primary); padding: 6px 0; }
.worst del { background: #fecaca; text-decoration: line-through; }
.worst ins { background: #bbf7d0; text-decoration: none; }
.worst ins.ins { background: #bfdbfe; } .worst .who { display: inline-block; min-width: 7em;
  color: var(--body-text-color-subdued); } .worst .legend { margin-bottom: 6px; }
#train-log .log-box { max-height: 360px; overflow: auto; display: flex;
  flex-direction: column-reverse; border: 1px solid var(--border-color-primary);
  border-radius: 6px; padding: 6px 8px; background: var(--background-fill-secondary); }
#train-log pre { margin: 0; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
"""


def language_choices(current: str) -> list[tuple[str, str]]:
    choices = [(f"{name} ({code})", code) for code, name in LANGUAGES.items()]
    if current and current not in LANGUAGES:
        choices.append((current, current))
    return choices


# ----- layout ----------------------------------------------------------------------------


def _data_tab(ui: SimpleNamespace) -> None:
    with gr.Row():
        ui.language = gr.Dropdown(
            label="Language",
            choices=language_choices("en"),
            allow_custom_value=True,
            info="Language code of the recordings (e.g. en, fr, hi)",
            elem_id="language",
        )
        ui.phrase_source = gr.Radio(
            label="Phrases to read",
            choices=[("Bundled list", "bundled"), ("My own phrases", "custom")],
        )
    with gr.Group(visible=False) as ui.custom_group:
        ui.custom_phrases = gr.Textbox(label="My own phrases (one per line)", lines=5)
        ui.use_phrases_btn = gr.Button("Use these phrases")
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("#### Record phrases")
            ui.phrase_html = gr.HTML(elem_id="phrase")
            with gr.Row():
                ui.prev_btn = gr.Button("◀ Previous", size="sm")
                ui.next_btn = gr.Button("Next ▶", size="sm")
            ui.rec_audio = gr.Audio(
                sources=["microphone", "upload"],
                type="filepath",
                label="Record this phrase (or upload a file of it)",
                elem_id="rec-audio",
            )
            ui.rec_text = gr.Textbox(
                label="Transcript (edit it if you said it differently)", elem_id="rec-text"
            )
            ui.save_rec_btn = gr.Button("Save recording", variant="primary", elem_id="save-rec")
        with gr.Column():
            gr.Markdown("#### Or upload audio files with transcripts")
            ui.up_files = gr.File(
                label="Audio files (wav, flac, mp3, ogg; a .txt file of the same name holds a "
                "transcript)",
                file_count="multiple",
                file_types=["audio", ".txt"],
                type="filepath",
                height=150,
                elem_id="upload-files",
            )
            ui.up_text = gr.Textbox(
                label="Transcripts: one line per audio file, in order (or 'file name<TAB>text')",
                lines=4,
                elem_id="upload-transcripts",
            )
            ui.add_btn = gr.Button("Add files to the dataset", elem_id="add-files")
    ui.data_msg = gr.Markdown(elem_id="data-msg")
    gr.Markdown("### Your dataset")
    ui.rows_df = gr.Dataframe(
        value=render.rows_frame([]), interactive=False, wrap=True, max_height=320, elem_id="rows"
    )
    with gr.Row():
        ui.row_pick = gr.Dropdown(label="Row", choices=[], elem_id="row-pick", scale=1)
        ui.row_audio = gr.Audio(label="Play", type="numpy", interactive=False, scale=2)
    with gr.Row():
        ui.row_text = gr.Textbox(label="Transcript of this row", scale=4, elem_id="row-text")
        ui.row_language = gr.Textbox(label="Language", scale=1, elem_id="row-language")
        ui.save_text_btn = gr.Button("Save row", scale=1, elem_id="save-text")
        ui.delete_btn = gr.Button("Delete row", variant="stop", scale=1, elem_id="delete-row")
        ui.undo_btn = gr.Button("Undo delete", scale=1, elem_id="undo-delete", visible=False)
    gr.Markdown("### Training data")
    ui.data_source = gr.Radio(
        choices=[
            ("My recordings (this project)", "recordings"),
            ("A manifest, a Hub dataset or a Granary config", "source"),
        ],
        show_label=False,
        elem_id="data-source",
    )
    with gr.Group(visible=False) as ui.source_group:
        ui.train_source = gr.Textbox(
            label="Training source",
            placeholder="path/to/train.jsonl · hf:NAME[:CONFIG][@SPLIT] · "
            "granary:LANG_CORPUS[@SPLIT]",
        )
        ui.eval_source = gr.Textbox(
            label="Eval source (optional; a local manifest is split otherwise)"
        )
        ui.granary_root = gr.Textbox(label="Granary audio root (Granary holds manifests only)")
        ui.use_source_btn = gr.Button("Use this source", elem_id="use-source")
        ui.source_msg = gr.Markdown(elem_id="source-msg")
    with gr.Row():
        ui.check_with_model = gr.Checkbox(
            label="Also check against the model chosen in the Train tab (length and token limits)"
        )
        ui.check_btn = gr.Button("Check data", elem_id="check-data")
    ui.check_md = gr.Markdown(elem_id="check-report")


def _train_tab(ui: SimpleNamespace) -> None:
    defaults = actions.FORM_DEFAULTS
    ui.summary_md = gr.Markdown(elem_id="train-data")
    with gr.Row():
        ui.family = gr.Dropdown(
            label="Model family", choices=list(FAMILY_CHOICES), elem_id="family"
        )
        ui.size = gr.Dropdown(label="Size", choices=[])
        ui.folder = gr.Textbox(
            label="Model folder (a local checkpoint or asrtune output)",
            visible=False,
            elem_id="model-folder",
        )
    with gr.Row(visible=False) as ui.tiny_row:
        # one button per registered family; the first (default) family's is #make-tiny
        ui.tiny_btns = {}
        for label, name in FAMILY_NAMES.items():
            first = not ui.tiny_btns
            ui.tiny_btns[name] = gr.Button(
                f"Make a tiny random {label}" + (" (smoke runs)" if first else ""),
                elem_id="make-tiny" if first else f"make-tiny-{name}",
            )
    with gr.Row():
        ui.method = gr.Radio(
            label="Method", choices=[("Full fine-tuning", "full"), ("LoRA", "lora")]
        )
        ui.epochs = gr.Number(label="Epochs", elem_id="epochs")
        ui.lr = gr.Number(label="Learning rate", info=actions.LEARNING_RATE_HINT)
        ui.batch = gr.Number(label="Batch size (30-s windows)", precision=0)
    with gr.Row():
        ui.lora_r = gr.Number(label="LoRA r", precision=0, visible=False)
        ui.lora_alpha = gr.Number(label="LoRA alpha", precision=0, visible=False)
        ui.freeze = gr.Checkbox(
            label="Freeze the encoder (Whisper: decoder only; Voxtral: audio tower)"
        )
    with gr.Accordion("More options", open=False):
        with gr.Row():
            ui.eval_fraction = gr.Slider(
                label="Recordings held out for eval",
                minimum=0,
                maximum=0.5,
                step=0.05,
                value=defaults["eval_fraction"],
            )
            ui.logging_steps = gr.Number(
                label="Log every N steps", precision=0, elem_id="logging-steps"
            )
            ui.max_steps = gr.Number(label="Max steps (-1: by epochs)", precision=0)
        with gr.Row():
            ui.report_to = gr.Dropdown(
                label="Tracking", choices=["trackio", "none"], elem_id="report-to"
            )
            ui.baseline = gr.Checkbox(label="Evaluate the base model first (baseline WER)")
        with gr.Row():
            ui.guard = gr.Textbox(
                label="Guard sets: NAME=SOURCE, one per line (general speech the model must "
                "not forget; measured against the base model at every evaluation)",
                lines=2,
                elem_id="guard-sets",
                scale=3,
            )
            ui.max_guard = gr.Number(
                label="Max guard regression (WER points as a fraction, e.g. 0.02; empty: none)",
                elem_id="max-guard",
            )
        ui.extra = gr.Textbox(
            label="More asrtune train options (YAML, e.g. 'warmup_steps: 0.2')", lines=3
        )
    with gr.Row():
        ui.start_btn = gr.Button("Start training", variant="primary", elem_id="start")
        ui.stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
    ui.train_msg = gr.Markdown(elem_id="train-msg")
    ui.about_md = gr.Markdown(elem_id="run-about")
    ui.progress = gr.HTML(render.progress_html({}), elem_id="train-progress")
    with gr.Row():
        ui.loss_plot = gr.LinePlot(
            value=render.loss_frame([]),
            x="step",
            y="loss",
            title="Training loss",
            height=260,
            elem_id="loss-plot",
        )
        ui.evals_df = gr.Dataframe(
            value=render.eval_frame([]),
            label="Evaluations (WER as it arrives)",
            interactive=False,
            elem_id="evals",
        )
    gr.Markdown("Log")
    ui.log_box = gr.HTML(render.log_html(""), elem_id="train-log")
    ui.timer = gr.Timer(1.0)


def _evaluate_tab(ui: SimpleNamespace) -> None:
    gr.Markdown(
        "Base model vs fine-tuned on the run's eval split (computed during the run), or on "
        "another manifest."
    )
    with gr.Row():
        ui.eval_manifest = gr.Textbox(label="Another manifest to evaluate on (optional)", scale=4)
        ui.eval_btn = gr.Button("Evaluate", scale=1, elem_id="evaluate")
    ui.compare_md = gr.Markdown(elem_id="eval-compare")
    ui.worst_html = gr.HTML(elem_id="eval-worst")


def _try_tab(ui: SimpleNamespace) -> None:
    ui.which = gr.Radio(
        choices=[("Fine-tuned model (the selected run)", "finetuned"), ("Base model", "base")],
        value="finetuned",
        show_label=False,
    )
    ui.try_audio = gr.Audio(
        sources=["upload", "microphone"],
        type="filepath",
        label="Upload or speak",
        elem_id="try-audio",
    )
    ui.try_btn = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
    ui.try_out = gr.Textbox(label="Transcription", lines=3, elem_id="try-output")
    ui.try_info = gr.Markdown(elem_id="try-info")


def _publish_tab(ui: SimpleNamespace) -> None:
    ui.token = gr.Textbox(
        label="Hugging Face token (write access)",
        type="password",
        info="Used for this upload only: never saved (not to disk, logs or the project).",
        elem_id="hf-token",
    )
    with gr.Row():
        ui.model_repo = gr.Textbox(label="Model repository (namespace/name)", elem_id="model-repo")
        ui.mode = gr.Radio(
            label="Upload",
            choices=["auto", "adapter", "merged"],
            value="auto",
            info="LoRA runs: the adapter or a merged model",
        )
    with gr.Row():
        ui.dataset_repo = gr.Textbox(label="Dataset repository (optional)")
        ui.private = gr.Checkbox(label="Private repositories", value=False)
        ui.dry_run = gr.Checkbox(
            label="Dry run: write the folders, upload nothing", value=False, elem_id="dry-run"
        )
    with gr.Row():
        ui.push_model_btn = gr.Button("Push model", variant="primary", elem_id="push-model")
        ui.push_data_btn = gr.Button("Push dataset (the run's recordings)")
    with gr.Row():
        ui.space = gr.Textbox(label="Demo Space (optional: namespace/name to upload to)")
        ui.demo_btn = gr.Button("Create demo app", elem_id="demo-app")
    ui.publish_msg = gr.Markdown(elem_id="publish-msg")
    ui.card_md = gr.Markdown(elem_id="model-card")


# ----- state → component updates ------------------------------------------------------


def dataset_updates(ui: SimpleNamespace, project: Project, message: str | None = None) -> dict:
    """The dataset table, the row editor (cleared), the current phrase and the summary."""
    frame, ids = actions.rows_table(project)
    html_text, phrase = actions.phrase_view(project)
    out = {
        ui.rows_df: frame,
        ui.row_pick: gr.update(choices=ids, value=None),
        ui.row_text: "",
        ui.row_language: "",
        ui.row_audio: None,
        ui.phrase_html: html_text,
        ui.rec_text: phrase,
        ui.summary_md: actions.data_summary(project),
        ui.check_md: actions.last_check(project),
    }
    if message is not None:
        out[ui.data_msg] = message
    return out


def settings_updates(ui: SimpleNamespace, project: Project) -> dict:
    """Every input the project remembers: language, phrases, data source, the train form."""
    settings = project.settings()
    form = actions.saved_form(project)
    family, size, folder = describe_model(form["model"])
    custom, named = settings["phrase_source"] == "custom", settings["data_source"] == "source"
    return {
        ui.language: gr.update(
            choices=language_choices(settings["language"]), value=settings["language"]
        ),
        ui.phrase_source: settings["phrase_source"],
        ui.custom_phrases: settings["custom_phrases"],
        ui.custom_group: gr.update(visible=custom),
        ui.data_source: settings["data_source"],
        ui.train_source: settings["train_source"],
        ui.eval_source: settings["eval_source"],
        ui.granary_root: settings["granary_audio_root"],
        ui.source_group: gr.update(visible=named),
        ui.family: family,
        ui.size: gr.update(
            choices=list(SIZES.get(family, {})), value=size, visible=family != LOCAL
        ),
        ui.folder: gr.update(value=folder, visible=family == LOCAL),
        ui.tiny_row: gr.update(visible=family == LOCAL),
        ui.method: "lora" if form["lora"] else "full",
        ui.epochs: form["num_train_epochs"],
        ui.lr: form["learning_rate"],
        ui.batch: form["per_device_train_batch_size"],
        ui.lora_r: gr.update(value=form["lora_r"], visible=bool(form["lora"])),
        ui.lora_alpha: gr.update(value=form["lora_alpha"], visible=bool(form["lora"])),
        ui.freeze: form["freeze_encoder"],
        ui.eval_fraction: form["eval_fraction"],
        ui.logging_steps: form["logging_steps"],
        ui.max_steps: form["max_steps"],
        ui.report_to: form["report_to"],
        ui.baseline: form["baseline"],
        ui.guard: form["guard"],
        ui.max_guard: form["max_guard_regression"],
        ui.extra: form["extra"],
        ui.model_repo: settings["model_repo"],
        ui.dataset_repo: settings["dataset_repo"],
        ui.space: settings["space_repo"],
        ui.dry_run: settings["publish_dry_run"],
    }


def run_updates(ui: SimpleNamespace, project: Project, run_id: str | None) -> dict:
    """The Train tab's view of a run and the Evaluate tab's results."""
    view = actions.run_view(project, run_id)
    table, worst = actions.evaluation_view(project, run_id)
    return {
        ui.progress: view["progress"],
        ui.loss_plot: view["loss"],
        ui.evals_df: view["evals"],
        ui.log_box: view["log"],
        ui.about_md: view["about"],
        ui.view_sig: actions.run_signature(project, run_id),
        ui.compare_md: table,
        ui.worst_html: worst,
    }


# ----- events ----------------------------------------------------------------------------


def _wire_data(ui: SimpleNamespace, project: Project) -> None:
    dataset = ui.dataset

    def on_language(code: str) -> dict:
        refused = actions.set_language(project, code)
        current = project.settings()["language"]
        language = gr.update(choices=language_choices(current), value=current)
        return {**dataset_updates(ui, project, refused or ""), ui.language: language}

    # .input: only what the user changes (a page load sets values too)
    ui.language.input(on_language, ui.language, [*dataset, ui.language])

    def on_phrase_source(choice: str) -> dict:
        project.update_settings(phrase_source=choice, phrase_index=0)
        return {
            **dataset_updates(ui, project),
            ui.custom_group: gr.update(visible=choice == "custom"),
        }

    ui.phrase_source.input(on_phrase_source, ui.phrase_source, [*dataset, ui.custom_group])

    def on_use_phrases(text: str) -> dict:
        project.update_settings(custom_phrases=text or "", phrase_index=0)
        count = len(parse_phrases(text or ""))
        return dataset_updates(ui, project, f"✓ {count} phrase(s) to record.")

    ui.use_phrases_btn.click(on_use_phrases, ui.custom_phrases, dataset)

    def move(step: int) -> Any:
        def handler() -> tuple:
            return (*actions.move_phrase(project, step), None)

        return handler

    ui.prev_btn.click(move(-1), None, [ui.phrase_html, ui.rec_text, ui.rec_audio])
    ui.next_btn.click(move(1), None, [ui.phrase_html, ui.rec_text, ui.rec_audio])

    def on_save_recording(audio: str | None, text: str) -> dict:
        message = actions.save_recording(project, audio, text)
        out = dataset_updates(ui, project, message)
        if message.startswith("✓"):
            out[ui.rec_audio] = None
        return out

    ui.save_rec_btn.click(on_save_recording, [ui.rec_audio, ui.rec_text], [*dataset, ui.rec_audio])

    def on_add(files: list[str] | None, text: str) -> dict:
        message = actions.add_uploads(project, files, text)
        # emptied even after a partial or failed add: files left in the box would be
        # matched to the next transcript lines in order
        return {**dataset_updates(ui, project, message), ui.up_files: None, ui.up_text: ""}

    ui.add_btn.click(on_add, [ui.up_files, ui.up_text], [*dataset, ui.up_files, ui.up_text])
    ui.row_pick.change(
        lambda row_id: actions.load_row(project, row_id),
        ui.row_pick,
        [ui.row_audio, ui.row_text, ui.row_language],
    )

    def on_select(evt: gr.SelectData) -> Any:
        return gr.update(value=evt.row_value[0] if evt.row_value else None)

    ui.rows_df.select(on_select, None, ui.row_pick)

    def on_save_text(row_id: str | None, text: str, language: str) -> dict:
        message = actions.save_row(project, row_id, text, language)
        return {
            ui.rows_df: actions.rows_table(project)[0],
            ui.data_msg: message,
            ui.summary_md: actions.data_summary(project),
            ui.check_md: actions.last_check(project),
        }

    ui.save_text_btn.click(
        on_save_text,
        [ui.row_pick, ui.row_text, ui.row_language],
        [ui.rows_df, ui.data_msg, ui.summary_md, ui.check_md],
    )

    def on_delete(row_id: str | None) -> dict:
        message = actions.delete_row(project, row_id)
        undo = gr.update(visible=project.deleted_row() is not None)
        return {**dataset_updates(ui, project, message), ui.undo_btn: undo}

    ui.delete_btn.click(on_delete, ui.row_pick, [*dataset, ui.undo_btn])

    def on_undo() -> dict:
        message = actions.undo_delete(project)
        return {**dataset_updates(ui, project, message), ui.undo_btn: gr.update(visible=False)}

    ui.undo_btn.click(on_undo, None, [*dataset, ui.undo_btn])

    def on_data_source(*values: str) -> dict:
        actions.save_source(project, *values)
        return {
            ui.source_group: gr.update(visible=values[0] == "source"),
            ui.summary_md: actions.data_summary(project),
            ui.check_md: actions.last_check(project),
        }

    ui.data_source.input(
        on_data_source, ui.source_inputs, [ui.source_group, ui.summary_md, ui.check_md]
    )

    def on_use_source(*values: str) -> dict:
        message = actions.use_source(project, *values)
        return {
            ui.summary_md: actions.data_summary(project),
            ui.source_msg: message,
            ui.check_md: actions.last_check(project),
        }

    ui.use_source_btn.click(
        on_use_source, ui.source_inputs, [ui.summary_md, ui.source_msg, ui.check_md]
    )

    def on_check(*values: Any) -> str:
        actions.save_source(project, *values[:4])
        with_model, family, size, folder = values[4:]
        model = resolve_model(family, size, folder)
        return actions.check_data(project, with_model, model, project.settings()["language"])

    ui.check_btn.click(
        on_check,
        [*ui.source_inputs, ui.check_with_model, ui.family, ui.size, ui.folder],
        ui.check_md,
        concurrency_id="heavy",
    )


def _wire_train(ui: SimpleNamespace, project: Project) -> None:
    def on_family(family: str) -> dict:
        return {
            ui.size: gr.update(
                choices=list(SIZES.get(family, {})),
                value=DEFAULT_SIZE.get(family),
                visible=family != LOCAL,
            ),
            ui.folder: gr.update(visible=family == LOCAL),
            ui.tiny_row: gr.update(visible=family == LOCAL),
            ui.train_msg: "",  # a message about the previous choice no longer applies
        }

    ui.family.input(on_family, ui.family, [ui.size, ui.folder, ui.tiny_row, ui.train_msg])

    def tiny(kind: str) -> Any:
        def handler() -> dict:
            path, message = actions.make_tiny(project, kind)
            out: dict = {ui.train_msg: message}
            if path:
                out[ui.folder] = gr.update(value=path, visible=True)
            return out

        return handler

    for name, button in ui.tiny_btns.items():
        button.click(tiny(name), None, [ui.folder, ui.train_msg])

    def on_method(choice: str) -> dict:
        visible = choice == "lora"
        return {ui.lora_r: gr.update(visible=visible), ui.lora_alpha: gr.update(visible=visible)}

    ui.method.change(on_method, ui.method, [ui.lora_r, ui.lora_alpha])

    form_inputs = [ui.family, ui.size, ui.folder, ui.method, ui.epochs, ui.lr, ui.batch,
                   ui.lora_r, ui.lora_alpha, ui.freeze, ui.eval_fraction, ui.logging_steps,
                   ui.max_steps, ui.report_to, ui.baseline, ui.guard, ui.max_guard,
                   ui.extra]  # fmt: skip

    def on_start(*values: Any) -> dict:
        actions.save_source(project, *values[-4:])
        message, run_id = actions.start_training(project, actions.form_values(*values[:-4]))
        out: dict = {ui.train_msg: message, ui.summary_md: actions.data_summary(project)}
        shown = run_id or jobs.active_run(project)  # refused: show the run that trains
        if shown:
            out[ui.run_pick] = gr.update(choices=actions.run_choices(project), value=shown)
        return out

    ui.start_btn.click(
        on_start,
        [*form_inputs, *ui.source_inputs],
        [ui.train_msg, ui.summary_md, ui.run_pick],
    )
    ui.stop_btn.click(
        lambda run_id: actions.stop_training(project, run_id), ui.run_pick, ui.train_msg
    )

    view = [ui.progress, ui.loss_plot, ui.evals_df, ui.log_box, ui.about_md, ui.view_sig]

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
            return [gr.skip()] * len(view) + pick
        updates = run_updates(ui, project, run_id)
        return [updates[component] for component in view] + pick

    ui.timer.tick(
        on_tick,
        [ui.run_pick, ui.view_sig, ui.shown_choices],
        [*view, ui.run_pick, ui.shown_choices],
        show_progress="hidden",
        concurrency_limit=None,
        api_visibility="private",
    )
    results = [*view, ui.compare_md, ui.worst_html]
    ui.run_pick.change(lambda run_id: run_updates(ui, project, run_id), ui.run_pick, results)

    def on_refresh(run_id: str | None) -> dict:
        runs = project.runs()
        value = run_id if run_id in runs else (runs or [None])[0]
        pick = gr.update(choices=actions.run_choices(project), value=value)
        return {ui.run_pick: pick, **dataset_updates(ui, project)}

    ui.refresh_btn.click(on_refresh, ui.run_pick, [ui.run_pick, *ui.dataset])


def _wire_results(ui: SimpleNamespace, project: Project, cache: ModelCache) -> None:
    ui.eval_tab.select(
        lambda run_id: actions.evaluation_view(project, run_id),
        ui.run_pick,
        [ui.compare_md, ui.worst_html],
    )
    ui.eval_btn.click(
        lambda run_id, manifest: actions.evaluate_run(project, cache, run_id, manifest),
        [ui.run_pick, ui.eval_manifest],
        [ui.compare_md, ui.worst_html],
        concurrency_id="heavy",
        concurrency_limit=1,
    )

    def on_transcribe(run_id: str | None, which: str, audio: str | None) -> tuple:
        return actions.transcribe_clip(project, cache, run_id, which, audio)

    ui.try_btn.click(
        on_transcribe,
        [ui.run_pick, ui.which, ui.try_audio],
        [ui.try_out, ui.try_info],
        concurrency_id="transcribe",
        concurrency_limit=TRANSCRIBE_CONCURRENCY,
        api_name="transcribe",
    )
    # the token is an input of each click and nothing else: never stored, never an API
    private = {"api_visibility": "private"}

    def on_push_model(run_id: str | None, *values: Any) -> tuple[str, str]:
        message = actions.publish_model(project, run_id, *values)
        dry_run = message.startswith("✓ Dry run")  # the card just written
        return message, actions.card_preview(project, run_id) if dry_run else gr.update()

    ui.push_model_btn.click(
        on_push_model,
        [ui.run_pick, ui.token, ui.model_repo, ui.private, ui.mode, ui.dataset_repo, ui.dry_run],
        [ui.publish_msg, ui.card_md],
        **private,
    )
    ui.push_data_btn.click(
        lambda *values: actions.publish_dataset(project, *values),
        [ui.run_pick, ui.token, ui.dataset_repo, ui.private, ui.dry_run],
        ui.publish_msg,
        **private,
    )
    ui.demo_btn.click(
        lambda *values: actions.publish_demo(project, *values),
        [ui.run_pick, ui.token, ui.model_repo, ui.space, ui.private, ui.dry_run],
        ui.publish_msg,
        **private,
    )


def build_app(project_dir: str | Path) -> gr.Blocks:
    """The whole UI over the project folder ``project_dir`` (created if needed)."""
    project = Project(project_dir)
    cache = ModelCache()
    ui = SimpleNamespace()
    with gr.Blocks(title="asrtune", analytics_enabled=False) as demo:
        gr.Markdown(
            "# asrtune\nYour speech data → a fine-tuned, evaluated, published model. "
            f"Project folder: `{project.root}`"
        )
        with gr.Row():
            ui.run_pick = gr.Dropdown(
                label="Run (used by Train, Evaluate, Try it and Publish)",
                choices=[],
                elem_id="run-pick",
                scale=4,
            )
            ui.refresh_btn = gr.Button("↻ Refresh", scale=1)
        ui.view_sig = gr.State("")
        ui.shown_choices = gr.State([])  # the run list's (label, id) pairs on the page
        with gr.Tab("1 · Data", id="data"):
            _data_tab(ui)
        with gr.Tab("2 · Train", id="train"):
            _train_tab(ui)
        with gr.Tab("3 · Evaluate", id="evaluate") as ui.eval_tab:
            _evaluate_tab(ui)
        with gr.Tab("4 · Try it", id="try"):
            _try_tab(ui)
        with gr.Tab("5 · Publish", id="publish"):
            _publish_tab(ui)
        ui.source_inputs = [ui.data_source, ui.train_source, ui.eval_source, ui.granary_root]
        ui.dataset = [ui.rows_df, ui.row_pick, ui.row_text, ui.row_language, ui.row_audio,
                      ui.phrase_html, ui.rec_text, ui.summary_md, ui.data_msg,
                      ui.check_md]  # fmt: skip
        _wire_data(ui, project)
        _wire_train(ui, project)
        _wire_results(ui, project, cache)

        def on_load() -> dict:
            """A page load (or reload) shows everything from the project folder."""
            runs = project.runs()
            run_id = runs[0] if runs else None
            return {
                **dataset_updates(ui, project),
                **settings_updates(ui, project),
                **run_updates(ui, project, run_id),
                ui.run_pick: gr.update(choices=actions.run_choices(project), value=run_id),
                ui.undo_btn: gr.update(visible=project.deleted_row() is not None),
            }

        settings_outputs = list(settings_updates(ui, project))
        run_outputs = list(run_updates(ui, project, None))
        outputs = [*ui.dataset, *settings_outputs, *run_outputs, ui.run_pick, ui.undo_btn]
        demo.load(on_load, None, outputs)
    return demo


# ----- launching -------------------------------------------------------------------------


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``'user:pass'`` → ``('user', 'pass')``; None/'' → None."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise AsrtuneError("--auth must be USER:PASSWORD")
    return user, password


def launch_options(
    host: str = "127.0.0.1",
    port: int | None = 7860,
    auth: str | None = None,
    share: bool = False,
    max_file_size: str | int | None = DEFAULT_MAX_FILE_SIZE,
) -> dict[str, Any]:
    """Keyword arguments of ``Blocks.launch``: local by default, an upload size limit, no
    run history (it would keep the inputs, the token among them, in the browser)."""
    return {
        "server_name": host,
        "server_port": port,
        "auth": parse_auth(auth),
        "share": share,
        "max_file_size": max_file_size,
        "run_history": False,
        "ssr_mode": False,
        "show_error": True,
        "css": CSS,
        "footer_links": ["gradio"],
    }


def launch(demo: gr.Blocks, **options: Any) -> Any:
    """Queue (concurrency: 2 by default; see the module docstring) and launch with
    :func:`launch_options`; other ``options`` go to ``Blocks.launch`` as they are.

    Gradio's own banner (which names its ``share=True`` argument, not ``--share``) and the
    HTTP client's request log are replaced by one line with the address."""
    import logging

    keys = ("host", "port", "auth", "share", "max_file_size")
    mine = {k: options.pop(k) for k in keys if k in options}
    block = not options.pop("prevent_thread_lock", False)
    quiet = options.pop("quiet", False)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    demo.queue(default_concurrency_limit=2)
    settings = {**launch_options(**mine), **options}
    result = demo.launch(**settings, prevent_thread_lock=True, quiet=True)
    if not quiet:
        print(
            f"asrtune ui: {demo.local_url}"
            + (f" · public: {demo.share_url}" if demo.share_url else "")
        )
        print("Ctrl-C stops the server (training runs keep going in their own processes).")
    if block:
        demo.block_thread()
    return result
