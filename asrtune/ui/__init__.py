"""``asrtune ui``: the web UI (Gradio) over the same library functions as the CLI.

Modules: :mod:`~asrtune.ui.app` (the page), :mod:`~asrtune.ui.actions` (what its buttons do),
:mod:`~asrtune.ui.project` (the project folder), :mod:`~asrtune.ui.jobs` and
:mod:`~asrtune.ui.worker` (training runs in a worker process), :mod:`~asrtune.ui.render`
(progress, tables, diffs), :mod:`~asrtune.ui.hub` (publishing with a typed token),
:mod:`~asrtune.ui.models` (model choices, loaded-model cache) and
:mod:`~asrtune.ui.phrases` (bundled phrase lists). Only ``app`` imports gradio.
"""
