"""The Gradio page of ``asrtune ui``: data → train → evaluate → try → publish.

Each tab is one module of :mod:`asrtune.ui.tabs` with its layout and its wiring; their
components together are a :class:`~asrtune.ui.page.Page`. The buttons call
:mod:`asrtune.ui.actions`, which does the work through the library. All state lives in the
project folder (:mod:`asrtune.ui.project`, :mod:`asrtune.ui.jobs`); a page load reads it back,
so a reload, a second browser tab or a restarted server shows the same thing. Training runs
in a worker process, polled by a 1-s timer that only sends what changed.

Concurrency: events share the queue with a default limit of 2; transcription has its own
limit (:data:`asrtune.ui.tabs.try_it.TRANSCRIBE_CONCURRENCY`: two users never wait on each
other), the progress timer has none, and data checks and evaluations share one slot
("heavy").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from asrtune.errors import AsrtuneError
from asrtune.ui import actions
from asrtune.ui.models import ModelCache
from asrtune.ui.page import Page
from asrtune.ui.project import Project
from asrtune.ui.tabs import data, evaluate, publish, train, try_it

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
#rows table { table-layout: fixed; } #rows td { overflow-wrap: anywhere; }
@media (max-width: 640px) { .tab-wrapper button { padding: 4px 5px !important;
  font-size: 12px !important; } }
#train-log pre { margin: 0; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
"""


def run_updates(page: Page, project: Project, run_id: str | None) -> dict:
    """Everything the page shows of a run: the Train tab's view, the Evaluate tab's results."""
    return {
        **train.view_updates(page.train, project, run_id),
        **evaluate.results_updates(page.evaluate, project, run_id),
        page.view_sig: actions.run_signature(project, run_id),
    }


def _layout() -> Page:
    with gr.Row():
        run_pick = gr.Dropdown(
            label="Run (used by Train, Evaluate, Try it and Publish)",
            choices=[],
            elem_id="run-pick",
            scale=4,
        )
        refresh_btn = gr.Button("↻ Refresh", scale=1)
    view_sig = gr.State("")
    shown_choices = gr.State([])
    with gr.Tab("1 · Data", id="data"):
        data_tab = data.layout()
    with gr.Tab("2 · Train", id="train"):
        train_tab = train.layout()
    with gr.Tab("3 · Evaluate", id="evaluate") as eval_tab:
        evaluate_tab = evaluate.layout(eval_tab)
    with gr.Tab("4 · Try it", id="try"):
        try_tab = try_it.layout()
    with gr.Tab("5 · Publish", id="publish"):
        publish_tab = publish.layout()
    return Page(run_pick, refresh_btn, view_sig, shown_choices, data_tab, train_tab,
                evaluate_tab, try_tab, publish_tab)  # fmt: skip


def _wire_page(page: Page, project: Project, demo: gr.Blocks) -> None:
    """The run list (its choice shows the run everywhere; ↻ rereads the project) and the
    page load."""
    results = [*page.train.run_view, page.view_sig, page.evaluate.compare_md,
               page.evaluate.worst_html]  # fmt: skip
    page.run_pick.change(lambda run_id: run_updates(page, project, run_id), page.run_pick, results)

    def on_refresh(run_id: str | None) -> dict:
        runs = project.runs()
        value = run_id if run_id in runs else (runs or [None])[0]
        pick = gr.update(choices=actions.run_choices(project), value=value)
        return {page.run_pick: pick, **data.dataset_updates(page, project)}

    page.refresh_btn.click(on_refresh, page.run_pick, [page.run_pick, *page.dataset])

    def settings_updates() -> dict:
        return {
            **data.settings_updates(page.data, project),
            **train.settings_updates(page.train, project),
            **publish.settings_updates(page.publish, project),
            **evaluate.settings_updates(page.evaluate, project),
        }

    def on_load() -> dict:
        """A page load (or reload) shows everything from the project folder."""
        runs = project.runs()
        run_id = runs[0] if runs else None
        choices = actions.run_choices(project)
        return {
            **data.dataset_updates(page, project),
            **settings_updates(),
            **run_updates(page, project, run_id),
            page.run_pick: gr.update(choices=choices, value=run_id),
            page.shown_choices: [list(choice) for choice in choices],
            page.data.undo_btn: gr.update(visible=project.deleted_row() is not None),
        }

    outputs = [*page.dataset, *settings_updates(), *run_updates(page, project, None),
               page.run_pick, page.shown_choices, page.data.undo_btn]  # fmt: skip
    demo.load(on_load, None, outputs)


def build_app(project_dir: str | Path) -> gr.Blocks:
    """The whole UI over the project folder ``project_dir`` (created if needed)."""
    project = Project(project_dir)
    cache = ModelCache()
    with gr.Blocks(title="asrtune", analytics_enabled=False) as demo:
        gr.Markdown(
            "# asrtune\nYour speech data → a fine-tuned, evaluated, published model. "
            f"Project folder: `{project.root}`"
        )
        page = _layout()
        data.wire(page, project)
        train.wire(page, project)
        evaluate.wire(page, project, cache)
        try_it.wire(page, project, cache)
        publish.wire(page, project)
        _wire_page(page, project, demo)
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
