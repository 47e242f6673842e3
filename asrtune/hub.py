"""The Hugging Face Hub, for models and datasets alike: repository ids and one-commit
uploads (``asrtune push``, ``asrtune data push``, the demo app, the UI).

The token comes from the caller (e.g. typed into the UI), ``HF_TOKEN`` or the
huggingface_hub login; it is passed to huggingface_hub only, and scrubbed from any error
message.
"""

from __future__ import annotations

import re
from pathlib import Path

from asrtune.errors import AsrtuneError

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or len(repo_id) > 96:
        raise AsrtuneError(f"{repo_id!r} is not a Hub repository id (namespace/name)")
    return repo_id


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
