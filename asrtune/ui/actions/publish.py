"""The Publish tab's actions: the model, the dataset and the demo app, each with a dry
run; the token typed into the page is used for one request and never stored."""

from __future__ import annotations

import shlex
from pathlib import Path

from asrtune.errors import AsrtuneError
from asrtune.publish.upload import scrub
from asrtune.ui import jobs
from asrtune.ui.actions.results import has_model, run_model
from asrtune.ui.project import Project
from asrtune.ui.result import Result

# ----- publish ---------------------------------------------------------------------------


def upload_mode_problem(out: Path, mode: str) -> str | None:
    """Why the Publish tab's Upload choice cannot publish ``out``, in the page's terms (the
    library's message names the command line's flags)."""
    from asrtune.publish.bundle import describe, is_hub_id

    info = describe(out)
    if mode == "adapter" and not info.is_adapter:
        return "this run trained all weights (no LoRA adapter): choose Upload: auto"
    if mode == "adapter" and not is_hub_id(info.base_model):
        return (
            f"the adapter's base model ({info.base_model}) is a local folder that others "
            "cannot load: choose Upload: merged (or auto, which merges it)"
        )
    return None


def card_preview(project: Project, run_id: str | None) -> str:
    """The model card of the run's last dry run (OUT/upload/README.md) as the page shows
    it: the text, then its metadata (model-index) folded away."""
    run_dir = project.run_dir(run_id)
    card = run_dir / "upload" / "README.md" if run_dir else None
    if card is None or not card.is_file():
        return "No model card yet: a dry run of Push model writes it here first."
    text = card.read_text(encoding="utf-8")
    meta, body = "", text
    if text.startswith("---\n") and "\n---\n" in text[4:]:
        meta, body = text[4:].split("\n---\n", 1)
    folded = f"\n\n<details><summary>Metadata</summary>\n\n```yaml\n{meta}\n```\n</details>"
    return f"#### The model card (README.md)\n\n{body.strip()}" + (folded if meta else "")


def publish_model(
    project: Project,
    run_id: str | None,
    token: str,
    repo: str,
    private: bool,
    mode: str,
    dataset_repo: str,
    dry_run: bool,
) -> Result:
    """Push the run's model (or, with ``dry_run``, write the upload folder and its card:
    ``details["dry_run"]`` then says the card preview can be shown)."""
    from asrtune.ui.hub import push_model

    repo, dataset_repo = (repo or "").strip(), (dataset_repo or "").strip()
    project.update_settings(
        model_repo=repo, dataset_repo=dataset_repo, publish_dry_run=bool(dry_run)
    )
    try:
        run_dir, _ = run_model(project, run_id)
        out = run_dir / jobs.OUTPUT_DIR
        if not has_model(out):
            raise AsrtuneError("this run has no model to publish yet")
        if not (repo or "").strip():
            raise AsrtuneError("type the model repository (namespace/name)")
        problem = upload_mode_problem(out, mode)
        if problem:
            raise AsrtuneError(problem)
        dry = run_dir / "upload" if dry_run else None
        result = push_model(
            out,
            repo.strip(),
            token,
            private=private,
            mode=mode,
            dataset_repo=(dataset_repo or "").strip() or None,
            dry_run_output=dry,
        )
    except AsrtuneError as exc:
        return Result.refused(scrub(str(exc), token))
    if dry_run:
        message = f"Dry run: the upload folder is `{result}` (nothing was uploaded)."
        return Result.done(message, dry_run=True)
    return Result.done(f"Model uploaded: {result}", dry_run=False)


def publish_dataset(
    project: Project, run_id: str | None, token: str, repo: str, private: bool, dry_run: bool
) -> Result:
    from asrtune.ui.hub import push_dataset

    project.update_settings(dataset_repo=(repo or "").strip(), publish_dry_run=bool(dry_run))
    try:
        run_dir, _ = run_model(project, run_id)
        data_dir = run_dir / "data"
        if not (data_dir / "train.jsonl").is_file():
            raise AsrtuneError("this run trained on a named source, not on the recordings")
        if not (repo or "").strip():
            raise AsrtuneError("type the dataset repository (namespace/name)")
        dry = run_dir / "dataset-upload" if dry_run else None
        result = push_dataset(data_dir, repo.strip(), token, private=private, dry_run_output=dry)
    except AsrtuneError as exc:
        return Result.refused(scrub(str(exc), token))
    if dry_run:
        return Result.done(f"Dry run: the dataset folder is `{result}` (nothing was uploaded).")
    return Result.done(f"Dataset uploaded: {result}")


def publish_demo(
    project: Project,
    run_id: str | None,
    token: str,
    model_repo: str,
    space: str,
    private: bool,
    dry_run: bool = False,
) -> Result:
    """Write the run's demo app (and upload it to ``space``, unless ``dry_run``). The
    command it prints runs as printed, here and offline: after a dry run (or with no Space),
    ``MODEL_ID`` names the run's own model folder, since ``model_repo`` may not exist yet."""
    from asrtune.ui.hub import demo_app

    model_repo, space = (model_repo or "").strip(), (space or "").strip()
    project.update_settings(model_repo=model_repo, space_repo=space, publish_dry_run=bool(dry_run))
    try:
        run_dir, options = run_model(project, run_id)
        out = run_dir / jobs.OUTPUT_DIR
        if not has_model(out):
            raise AsrtuneError("this run has no model yet")
        app_dir, url = demo_app(
            out,
            run_dir / "space",
            model_id=model_repo or None,
            language=options.get("language"),
            space_id=None if dry_run else space or None,
            token=token,
            private=private,
        )
    except AsrtuneError as exc:
        return Result.refused(scrub(str(exc), token))
    model_env = f"MODEL_ID={shlex.quote(str(out))} " if model_repo and not url else ""
    command = f"cd {shlex.quote(str(app_dir))} && {model_env}python app.py"
    message = f"Demo app written to `{app_dir}` (run it: `{command}`)."
    if dry_run and space:
        message += f" Dry run: nothing was uploaded to the Space {space}."
    elif url:
        message += f" Space uploaded: {url}"
    return Result.done(message, app_dir=str(app_dir), command=command, space_url=url)
