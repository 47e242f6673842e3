"""``asrtune push``: publish a fine-tuned model to the Hugging Face Hub in one commit.

What goes up is what a user needs (:mod:`asrtune.publish.bundle`): safetensors weights,
configs, processor, the model card and the eval report(s); never checkpoints or optimizer
state. ``dry_run_output`` writes exactly that folder instead of uploading it.

The upload itself, and what happens to the token, is :func:`asrtune.hub.hub_upload`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asrtune.hub import check_repo_id, hub_upload
from asrtune.hub import scrub as scrub  # re-exported: the UI imports it from here
from asrtune.publish.bundle import model_bundle, write_files
from asrtune.publish.card import BASELINE_FILE, build_card, load_baseline

log = logging.getLogger("asrtune")

# Keys of an eval report that hold local paths: meaningless on the Hub.
_LOCAL_KEYS = ("model", "manifest", "utterances_file")


def _report_bytes(report: dict[str, Any]) -> bytes:
    clean = {k: v for k, v in report.items() if k not in _LOCAL_KEYS}
    return (json.dumps(clean, indent=2) + "\n").encode()


@contextmanager
def publish_files(
    out: str | Path,
    repo_id: str,
    *,
    mode: str = "auto",
    base_model: str | None = None,
    dataset_repo: str | None = None,
    baseline_report: str | Path | None = None,
    languages: list[str] | None = None,
) -> Iterator[dict[str, Path | bytes]]:
    """Everything to upload for ``out`` as ``repo_id``: ``path in repo → file or content``."""
    check_repo_id(repo_id)
    for other in (base_model, dataset_repo):
        if other is not None:
            check_repo_id(other)
    with model_bundle(out, mode, base_model) as bundle:
        baseline = load_baseline(bundle.info, baseline_report)
        files = dict(bundle.files)
        files["README.md"] = build_card(
            bundle, repo_id, dataset_repo=dataset_repo, baseline=baseline, languages=languages
        ).encode()
        if bundle.info.eval_results:
            files["eval_results.json"] = _report_bytes(bundle.info.eval_results)
        if baseline:
            files[BASELINE_FILE] = _report_bytes(baseline)
        yield files


def push(
    out: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    mode: str = "auto",
    base_model: str | None = None,
    dataset_repo: str | None = None,
    baseline_report: str | Path | None = None,
    languages: list[str] | None = None,
    dry_run_output: str | Path | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Publish ``out`` as ``repo_id`` (or write the folder to ``dry_run_output``).

    Returns the commit URL, or the dry-run folder.
    """
    with publish_files(
        out,
        repo_id,
        mode=mode,
        base_model=base_model,
        dataset_repo=dataset_repo,
        baseline_report=baseline_report,
        languages=languages,
    ) as files:
        total = sum(len(s) if isinstance(s, bytes) else s.stat().st_size for s in files.values())
        log.info("%d files, %.1f MB: %s", len(files), total / 1e6, ", ".join(sorted(files)))
        if dry_run_output is not None:
            return str(write_files(files, dry_run_output))
        return hub_upload(
            files,
            repo_id,
            private=private,
            commit_message=commit_message or f"Upload {Path(out).name} with asrtune",
            token=token,
        )
