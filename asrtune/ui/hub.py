"""Publishing from the UI with a token typed into the page.

The token lives only in the arguments of these functions for the length of one request: it
is handed to ``huggingface_hub.HfApi(token=...)``, never put in the environment (a training
worker started meanwhile would inherit it), never written to a file, a log or the project,
and removed from every error message. What is uploaded is what ``asrtune push`` /
``asrtune data push`` / ``asrtune demo-app`` build (:func:`asrtune.publish.publish_files`,
:func:`asrtune.data.push.push_dataset`, :func:`asrtune.publish.write_demo_app`).
"""

from __future__ import annotations

from pathlib import Path

from asrtune.errors import AsrtuneError


def _need_token(token: str | None) -> str:
    token = (token or "").strip()
    if not token:
        raise AsrtuneError("type a Hugging Face token with write access first")
    return token


def upload(
    files: dict[str, Path | bytes],
    repo_id: str,
    token: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    space_sdk: str | None = None,
    message: str = "Upload with asrtune",
) -> str:
    """Create ``repo_id`` if needed and add ``files`` in one commit with the typed token."""
    from asrtune.publish.upload import hub_upload

    return hub_upload(
        files,
        repo_id,
        repo_type=repo_type,
        private=private,
        commit_message=message,
        space_sdk=space_sdk,
        token=_need_token(token),
    )


def push_model(
    out: str | Path,
    repo_id: str,
    token: str | None,
    *,
    private: bool = False,
    mode: str = "auto",
    dataset_repo: str | None = None,
    dry_run_output: str | Path | None = None,
) -> str:
    """Upload a run's model with its card and eval reports (baseline included when the run
    has one); with ``dry_run_output``, write that folder instead and return its path."""
    from asrtune.publish.upload import publish_files, push

    if dry_run_output is not None:
        return push(
            out, repo_id, mode=mode, dataset_repo=dataset_repo, dry_run_output=dry_run_output
        )
    token = _need_token(token)
    with publish_files(out, repo_id, mode=mode, dataset_repo=dataset_repo) as files:
        return upload(files, repo_id, token, private=private, message="Upload model with asrtune")


def push_dataset(
    split_dir: str | Path,
    repo_id: str,
    token: str | None,
    *,
    private: bool = False,
    dry_run_output: str | Path | None = None,
) -> str:
    """Upload a run's train/eval manifests with their audio as a Hub dataset (parquet)."""
    from asrtune.data.push import build_dataset_folder
    from asrtune.data.push import push_dataset as data_push
    from asrtune.publish.upload import check_repo_id

    check_repo_id(repo_id)
    if dry_run_output is not None:
        return str(build_dataset_folder(split_dir, repo_id, dry_run_output))
    return data_push(split_dir, repo_id, private=private, token=_need_token(token))


def demo_app(
    out: str | Path,
    app_dir: str | Path,
    *,
    model_id: str | None = None,
    language: str | None = None,
    space_id: str | None = None,
    token: str | None = None,
    private: bool = False,
) -> tuple[Path, str | None]:
    """Write the Gradio demo app for a run's model; upload it to ``space_id`` when given.
    Returns the app folder and the Space commit URL (or None)."""
    import shutil

    from asrtune.publish.demo_app import write_demo_app
    from asrtune.publish.upload import check_repo_id

    if space_id:
        check_repo_id(space_id)
        token = _need_token(token)
    app_dir = Path(app_dir)
    if app_dir.exists():
        shutil.rmtree(app_dir)  # rewritten from the model each time
    written = write_demo_app(out, app_dir, model_id=model_id or None, language=language)
    if not space_id:
        return written, None
    files: dict[str, Path | bytes] = {
        p.relative_to(written).as_posix(): p
        for p in sorted(written.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
    url = upload(
        files,
        space_id,
        token or "",
        repo_type="space",
        private=private,
        space_sdk="gradio",
        message="Speech recognition demo (asrtune)",
    )
    return written, url
