"""The Data tab: the language, phrases to record, uploads, the dataset table with its row
editor, the training source and the data check (layout and wiring together)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from asrtune.ui import actions, render
from asrtune.ui.models import resolve_model
from asrtune.ui.phrases import LANGUAGES, parse_phrases
from asrtune.ui.project import Project

if TYPE_CHECKING:
    from asrtune.ui.page import Page

#: The dataset table's column widths: id, language, text, seconds, file.
ROW_COLUMN_WIDTHS = ["9%", "8%", "53%", "8%", "22%"]


@dataclass(frozen=True)
class DataTab:
    """The Data tab's components."""

    language: gr.Dropdown
    language_msg: gr.Markdown
    phrase_source: gr.Radio
    custom_group: gr.Group
    custom_phrases: gr.Textbox
    use_phrases_btn: gr.Button
    phrase_html: gr.HTML
    prev_btn: gr.Button
    next_btn: gr.Button
    rec_audio: gr.Audio
    rec_text: gr.Textbox
    save_rec_btn: gr.Button
    rec_msg: gr.Markdown
    up_files: gr.File
    up_text: gr.Textbox
    add_btn: gr.Button
    up_msg: gr.Markdown
    rows_df: gr.Dataframe
    row_pick: gr.Dropdown
    row_audio: gr.Audio
    row_text: gr.Textbox
    row_language: gr.Textbox
    save_text_btn: gr.Button
    delete_btn: gr.Button
    undo_btn: gr.Button
    row_msg: gr.Markdown
    data_source: gr.Radio
    source_group: gr.Group
    train_source: gr.Textbox
    eval_source: gr.Textbox
    granary_root: gr.Textbox
    use_source_btn: gr.Button
    source_msg: gr.Markdown
    check_with_model: gr.Checkbox
    check_btn: gr.Button
    check_md: gr.Markdown

    @property
    def source_inputs(self) -> list[Any]:
        """The inputs of :func:`asrtune.ui.actions.save_source`, in its order."""
        return [self.data_source, self.train_source, self.eval_source, self.granary_root]


def language_choices(current: str) -> list[tuple[str, str]]:
    choices = [(f"{name} ({code})", code) for code, name in LANGUAGES.items()]
    if current and current not in LANGUAGES:
        choices.append((current, current))
    return choices


def _recording_column() -> dict[str, Any]:
    gr.Markdown("#### Record phrases")
    parts: dict[str, Any] = {"phrase_html": gr.HTML(elem_id="phrase")}
    with gr.Row():
        parts["prev_btn"] = gr.Button("◀ Previous", size="sm")
        parts["next_btn"] = gr.Button("Next ▶", size="sm")
    parts["rec_audio"] = gr.Audio(
        sources=["microphone", "upload"],
        type="filepath",
        label="Record this phrase (or upload a file of it)",
        elem_id="rec-audio",
    )
    parts["rec_text"] = gr.Textbox(
        label="Transcript (edit it if you said it differently)", elem_id="rec-text"
    )
    parts["save_rec_btn"] = gr.Button("Save recording", variant="primary", elem_id="save-rec")
    parts["rec_msg"] = gr.Markdown(elem_id="rec-msg")
    return parts


def _upload_column() -> dict[str, Any]:
    gr.Markdown("#### Or upload audio files with transcripts")
    return {
        "up_files": gr.File(
            label="Audio files (wav, flac, mp3, ogg; a .txt file of the same name holds a "
            "transcript)",
            file_count="multiple",
            file_types=["audio", ".txt"],
            type="filepath",
            height=150,
            elem_id="upload-files",
        ),
        "up_text": gr.Textbox(
            label="Transcripts: one line per audio file, in order (or 'file name<TAB>text')",
            lines=4,
            elem_id="upload-transcripts",
        ),
        "add_btn": gr.Button("Add files to the dataset", elem_id="add-files"),
        "up_msg": gr.Markdown(elem_id="upload-msg"),
    }


def _rows_section() -> dict[str, Any]:
    gr.Markdown("### Your dataset")
    parts: dict[str, Any] = {
        "rows_df": gr.Dataframe(
            value=render.rows_frame([]),
            interactive=False,
            wrap=True,
            max_height=320,
            column_widths=ROW_COLUMN_WIDTHS,
            elem_id="rows",
        )
    }
    with gr.Row():
        parts["row_pick"] = gr.Dropdown(label="Row", choices=[], elem_id="row-pick", scale=1)
        parts["row_audio"] = gr.Audio(label="Play", type="numpy", interactive=False, scale=2)
    with gr.Row():
        parts["row_text"] = gr.Textbox(label="Transcript of this row", scale=4, elem_id="row-text")
        parts["row_language"] = gr.Textbox(
            label="Language", scale=1, elem_id="row-language", max_lines=1
        )
        parts["save_text_btn"] = gr.Button("Save row", scale=1, elem_id="save-text")
        parts["delete_btn"] = gr.Button("Delete row", variant="stop", scale=1, elem_id="delete-row")
        parts["undo_btn"] = gr.Button("Undo delete", scale=1, elem_id="undo-delete", visible=False)
    parts["row_msg"] = gr.Markdown(elem_id="data-msg")
    return parts


def _source_section() -> dict[str, Any]:
    gr.Markdown("### Training data")
    parts: dict[str, Any] = {
        "data_source": gr.Radio(
            choices=[
                ("My recordings (this project)", "recordings"),
                ("A manifest, a Hub dataset or a Granary config", "source"),
            ],
            show_label=False,
            elem_id="data-source",
        )
    }
    with gr.Group(visible=False) as parts["source_group"]:
        parts["train_source"] = gr.Textbox(
            label="Training source",
            placeholder="path/to/train.jsonl · hf:NAME[:CONFIG][@SPLIT] · "
            "granary:LANG_CORPUS[@SPLIT]",
            elem_id="train-source",
        )
        parts["eval_source"] = gr.Textbox(
            label="Eval source (optional; a local manifest is split otherwise)"
        )
        parts["granary_root"] = gr.Textbox(
            label="Granary audio root (Granary holds manifests only)"
        )
        parts["use_source_btn"] = gr.Button("Use this source", elem_id="use-source")
        parts["source_msg"] = gr.Markdown(elem_id="source-msg")
    with gr.Row():
        parts["check_with_model"] = gr.Checkbox(
            label="Also check against the model chosen in the Train tab (length and token limits)"
        )
        parts["check_btn"] = gr.Button("Check data", elem_id="check-data")
    parts["check_md"] = gr.Markdown(elem_id="check-report")
    return parts


def layout() -> DataTab:
    """Lay out the Data tab (inside a ``gr.Tab``)."""
    parts: dict[str, Any] = {}
    with gr.Row():
        parts["language"] = gr.Dropdown(
            label="Language",
            choices=language_choices("en"),
            allow_custom_value=True,
            info="Language code of the recordings (e.g. en, fr, hi)",
            elem_id="language",
        )
        parts["phrase_source"] = gr.Radio(
            label="Phrases to read",
            choices=[("Bundled list", "bundled"), ("My own phrases", "custom")],
        )
    parts["language_msg"] = gr.Markdown(elem_id="language-msg")
    with gr.Group(visible=False) as parts["custom_group"]:
        parts["custom_phrases"] = gr.Textbox(label="My own phrases (one per line)", lines=5)
        parts["use_phrases_btn"] = gr.Button("Use these phrases")
    with gr.Row(equal_height=False):
        with gr.Column():
            parts.update(_recording_column())
        with gr.Column():
            parts.update(_upload_column())
    parts.update(_rows_section())
    parts.update(_source_section())
    return DataTab(**parts)


# ----- state → component updates ------------------------------------------------------


def dataset_updates(page: Page, project: Project) -> dict:
    """The dataset table, the row editor (cleared), the current phrase, the summary and
    the data check: the components of ``page.dataset``."""
    tab = page.data
    frame, ids = actions.rows_table(project)
    html_text, phrase = actions.phrase_view(project)
    return {
        tab.rows_df: frame,
        tab.row_pick: gr.update(choices=ids, value=None),
        tab.row_text: "",
        tab.row_language: "",
        tab.row_audio: None,
        tab.phrase_html: html_text,
        tab.rec_text: phrase,
        page.train.summary_md: actions.data_summary(project),
        tab.check_md: actions.last_check(project),
    }


def settings_updates(tab: DataTab, project: Project) -> dict:
    """The inputs the project remembers for this tab."""
    settings = project.settings()
    custom, named = settings["phrase_source"] == "custom", settings["data_source"] == "source"
    return {
        tab.language: gr.update(
            choices=language_choices(settings["language"]), value=settings["language"]
        ),
        tab.phrase_source: settings["phrase_source"],
        tab.custom_phrases: settings["custom_phrases"],
        tab.custom_group: gr.update(visible=custom),
        tab.data_source: settings["data_source"],
        tab.train_source: settings["train_source"],
        tab.eval_source: settings["eval_source"],
        tab.granary_root: settings["granary_audio_root"],
        tab.source_group: gr.update(visible=named),
    }


# ----- events ----------------------------------------------------------------------------


def _wire_phrases(page: Page, project: Project) -> None:
    tab, dataset = page.data, page.dataset

    def on_language(code: str) -> dict:
        result = actions.set_language(project, code)
        current = project.settings()["language"]
        language = gr.update(choices=language_choices(current), value=current)
        return {
            **dataset_updates(page, project),
            tab.language: language,
            tab.language_msg: "" if result.ok else result.text,
        }

    # .input: only what the user changes (a page load sets values too)
    tab.language.input(on_language, tab.language, [*dataset, tab.language, tab.language_msg])

    def on_phrase_source(choice: str) -> dict:
        project.update_settings(phrase_source=choice, phrase_index=0)
        return {
            **dataset_updates(page, project),
            tab.custom_group: gr.update(visible=choice == "custom"),
        }

    tab.phrase_source.input(on_phrase_source, tab.phrase_source, [*dataset, tab.custom_group])

    def on_use_phrases(text: str) -> dict:
        project.update_settings(custom_phrases=text or "", phrase_index=0)
        count = len(parse_phrases(text or ""))
        return {**dataset_updates(page, project), tab.rec_msg: f"{count} phrase(s) to record."}

    tab.use_phrases_btn.click(on_use_phrases, tab.custom_phrases, [*dataset, tab.rec_msg])

    def move(step: int) -> Any:
        def handler() -> tuple:
            return (*actions.move_phrase(project, step), None)

        return handler

    moved = [tab.phrase_html, tab.rec_text, tab.rec_audio]
    tab.prev_btn.click(move(-1), None, moved)
    tab.next_btn.click(move(1), None, moved)


def _wire_adding(page: Page, project: Project) -> None:
    tab, dataset = page.data, page.dataset

    def on_save_recording(audio: str | None, text: str) -> dict:
        result = actions.save_recording(project, audio, text)
        out = {**dataset_updates(page, project), tab.rec_msg: result.text}
        if result.ok:
            out[tab.rec_audio] = None
        return out

    tab.save_rec_btn.click(
        on_save_recording, [tab.rec_audio, tab.rec_text], [*dataset, tab.rec_msg, tab.rec_audio]
    )

    def on_add(files: list[str] | None, text: str) -> dict:
        result = actions.add_uploads(project, files, text)
        # emptied even after a partial or failed add: files left in the box would be
        # matched to the next transcript lines in order
        return {
            **dataset_updates(page, project),
            tab.up_msg: result.text,
            tab.up_files: None,
            tab.up_text: "",
        }

    tab.add_btn.click(
        on_add, [tab.up_files, tab.up_text], [*dataset, tab.up_msg, tab.up_files, tab.up_text]
    )


def _wire_rows(page: Page, project: Project) -> None:
    tab, dataset = page.data, page.dataset
    tab.row_pick.change(
        lambda row_id: actions.load_row(project, row_id),
        tab.row_pick,
        [tab.row_audio, tab.row_text, tab.row_language],
    )

    def on_select(evt: gr.SelectData) -> Any:
        return gr.update(value=evt.row_value[0] if evt.row_value else None)

    tab.rows_df.select(on_select, None, tab.row_pick)

    def on_save_text(row_id: str | None, text: str, language: str) -> dict:
        result = actions.save_row(project, row_id, text, language)
        return {
            tab.rows_df: actions.rows_table(project)[0],
            tab.row_msg: result.text,
            page.train.summary_md: actions.data_summary(project),
            tab.check_md: actions.last_check(project),
        }

    tab.save_text_btn.click(
        on_save_text,
        [tab.row_pick, tab.row_text, tab.row_language],
        [tab.rows_df, tab.row_msg, page.train.summary_md, tab.check_md],
    )

    def on_delete(row_id: str | None) -> dict:
        result = actions.delete_row(project, row_id)
        undo = gr.update(visible=project.deleted_row() is not None)
        return {**dataset_updates(page, project), tab.row_msg: result.text, tab.undo_btn: undo}

    tab.delete_btn.click(on_delete, tab.row_pick, [*dataset, tab.row_msg, tab.undo_btn])

    def on_undo() -> dict:
        result = actions.undo_delete(project)
        hidden = gr.update(visible=False)
        return {**dataset_updates(page, project), tab.row_msg: result.text, tab.undo_btn: hidden}

    tab.undo_btn.click(on_undo, None, [*dataset, tab.row_msg, tab.undo_btn])


def _wire_source(page: Page, project: Project) -> None:
    tab, summary = page.data, page.train.summary_md

    def on_data_source(*values: str) -> dict:
        actions.save_source(project, *values)
        return {
            tab.source_group: gr.update(visible=values[0] == "source"),
            summary: actions.data_summary(project),
            tab.check_md: actions.last_check(project),
        }

    tab.data_source.input(
        on_data_source, tab.source_inputs, [tab.source_group, summary, tab.check_md]
    )

    def on_use_source(*values: str) -> dict:
        result = actions.use_source(project, *values)
        return {
            summary: actions.data_summary(project),
            tab.source_msg: result.text,
            tab.check_md: actions.last_check(project),
        }

    tab.use_source_btn.click(
        on_use_source, tab.source_inputs, [summary, tab.source_msg, tab.check_md]
    )

    def on_check(*values: Any) -> str:
        actions.save_source(project, *values[:4])
        with_model, family, size, folder = values[4:]
        model = resolve_model(family, size, folder)
        return actions.check_data(project, with_model, model, project.settings()["language"])

    train = page.train
    tab.check_btn.click(
        on_check,
        [*tab.source_inputs, tab.check_with_model, train.family, train.size, train.folder],
        tab.check_md,
        concurrency_id="heavy",
    )


def wire(page: Page, project: Project) -> None:
    """Connect the Data tab's events to :mod:`asrtune.ui.actions`."""
    _wire_phrases(page, project)
    _wire_adding(page, project)
    _wire_rows(page, project)
    _wire_source(page, project)
