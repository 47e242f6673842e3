"""The public API stays callable however much of the package has been imported."""

from __future__ import annotations

import importlib
import pkgutil

import asrtune


def test_api_names_are_the_functions_even_after_every_module_is_imported() -> None:
    for info in pkgutil.walk_packages(asrtune.__path__, "asrtune."):
        if not info.name.startswith("asrtune.ui"):  # the UI needs the optional gradio
            importlib.import_module(info.name)
    for name in (
        "train",
        "evaluate",
        "transcribe",
        "transcribe_segments",
        "load_model",
        "import_ct2",
        "run_demo",
        "push",
        "export_model",
        "merge_adapter",
        "write_demo_app",
    ):
        assert callable(getattr(asrtune, name)), name
    import asrtune.publish as publish

    assert callable(publish.push)
