"""``asrtune push``: publish a fine-tuned model to the Hugging Face Hub in one commit.

What goes up is what a user needs (:mod:`asrtune.publish.bundle`): safetensors weights,
configs, processor, the model card and the eval report(s); never checkpoints or optimizer
state. ``dry_run_output`` writes exactly that folder instead of uploading it.

The token comes from ``HF_TOKEN`` or the huggingface_hub login; it is passed to
huggingface_hub only, and scrubbed from any error message.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asrtune.errors import AsrtuneError
from asrtune.publish.bundle import model_bundle, write_files
from asrtune.publish.card import BASELINE_FILE, build_card, load_baseline

log = logging.getLogger("asrtune")

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
# Keys of an eval report that hold local paths: meaningless on the Hub.
_LOCAL_KEYS = ("model", "manifest", "utterances_file")


def check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or len(repo_id) > 96:
        raise AsrtuneError(f"{repo_id!r} is not a Hub repository id (namespace/name)")
    return repo_id


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


def scrub(message: str, token: str | None) -> str:
    """``message`` with the token (if any) replaced by ``***``."""
    return message.replace(token, "***") if token else message


def hub_upload(
    files: dict[str, Path | bytes],
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    commit_message: str = "Upload with asrtune",
    space_sdk: str | None = None,
    token: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and add ``files`` in one commit; returns the commit URL.

    ``token`` (e.g. typed into the UI) is only handed to ``HfApi``; without it, HF_TOKEN or
    the saved login is used.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    token = (token or "").strip() or get_token()
    if not token:
        raise AsrtuneError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    operations = [
        CommitOperationAdd(
            path_in_repo=name,
            path_or_fileobj=source if isinstance(source, bytes) else str(source),
        )
        for name, source in sorted(files.items())
    ]
    try:
        api.create_repo(
            repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk
        )
        commit = api.create_commit(
            repo_id, operations, commit_message=commit_message, repo_type=repo_type
        )
    except Exception as exc:  # network, auth, permissions: one line, never the token
        lines = str(exc).strip().splitlines()
        detail = lines[0] if lines else type(exc).__name__
        raise AsrtuneError(
            f"upload to {repo_id} failed: {type(exc).__name__}: {scrub(detail, token)}"
        ) from None
    return str(commit.commit_url)


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
