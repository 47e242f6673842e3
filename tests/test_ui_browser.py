"""End to end in a real browser: Debian's Chromium (headless, driven by Playwright) against
``asrtune ui`` running on localhost.

The journey: record one phrase with the (fake) microphone and upload two files with
transcripts, check the data, see a language, a source, empty epochs and a model folder that
is no model refused before any run exists (each message in its own place), make a tiny
random Whisper, train it for a few steps while the page shows progress (the run list and
Stop follow the run's state), compare base and fine-tuned WER, transcribe a file, publish
(dry run, the demo app included, with a token that must not land anywhere on disk), reload
the page to find everything again, and see every tab at 400 px. Screenshots go to
``test-artifacts/ui/``.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import tone

pytest.importorskip("gradio")
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # a fake microphone (a beep) that needs no permission prompt
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "ui"
TOKEN = "hf_thisTokenMustNeverBeStored0123456789"
#: An audio component's download link once its audio is on the server.
UPLOADED = "a[data-testid=download-link][href*='gradio_api/file=']"
TRANSCRIPTS = ["turn on the lights in the kitchen", "call the help desk tomorrow"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app on a free localhost port, in this process; its project folder."""
    from asrtune.ui import jobs
    from asrtune.ui.app import build_app, launch
    from asrtune.ui.project import Project

    project = tmp_path_factory.mktemp("ui") / "project"
    demo = build_app(project)
    port = _free_port()
    launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", project
    busy = jobs.active_run(Project(project))
    if busy:  # a failed test must not leave a worker behind
        run_dir = project / "runs" / busy
        jobs.request_stop(run_dir)
        jobs.request_stop(run_dir)
    demo.close()


@pytest.fixture(scope="module")
def page(served: tuple[str, Path]) -> Iterator[object]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        # a shared 2-core machine can take longer than Playwright's 5 s to render a change
        playwright_api.expect.set_options(timeout=30_000)
        yield page
        browser.close()


def shot(page: object, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def text_of(page: object, selector: str) -> str:
    return page.locator(selector).inner_text()


def choose(page: object, label: str, option: str) -> None:
    """Pick ``option`` in the Gradio dropdown labelled ``label``."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_whole_journey_in_the_browser(
    served: tuple[str, Path], page: object, tmp_path: Path
) -> None:
    expect = playwright_api.expect
    url, project = served
    started = time.perf_counter()
    clips = [tmp_path / f"clip {i} é.wav" for i in range(2)]  # names to sanitize
    for i, clip in enumerate(clips):
        sf.write(clip, tone(1.2 + 0.3 * i, 220 + 110 * i), 16000)

    # 1. data: record the first phrase with the fake microphone
    page.goto(url)
    expect(page.locator("#phrase")).to_contain_text("Phrase 1 of 25")
    record = page.locator("#rec-audio")
    record.get_by_role("button", name=re.compile("record", re.I)).first.click()
    page.wait_for_timeout(1500)
    record.get_by_role("button", name=re.compile("stop", re.I)).first.click()
    expect(record.locator(UPLOADED)).to_be_attached()  # the recording reached the server
    page.locator("#save-rec").click()
    expect(page.locator("#rec-msg")).to_contain_text("Saved rec0001")
    expect(page.locator("#phrase")).to_contain_text("Phrase 2 of 25 · 1 recorded")

    # ... and upload two files with their transcripts
    page.locator("#upload-files input[type=file]").set_input_files([str(c) for c in clips])
    expect(page.locator("#upload-files table tr")).to_have_count(2)  # both uploaded
    page.locator("#upload-transcripts textarea").fill("\n".join(TRANSCRIPTS))
    page.locator("#add-files").click()
    expect(page.locator("#upload-msg")).to_contain_text("Added 2 file(s)")
    expect(page.locator("#rec-msg")).not_to_contain_text("Added")  # under its own button
    rows = page.locator("#rows")
    for text in TRANSCRIPTS:
        expect(rows).to_contain_text(text)
    expect(rows).to_contain_text("audio/rec0002-clip_0_e.wav")
    page.get_by_role("button", name="Check data").click()
    expect(page.locator("#check-report")).to_contain_text("3 rows: 3 valid, 0 invalid")
    # adding the same files again adds nothing
    page.locator("#upload-files input[type=file]").set_input_files([str(c) for c in clips])
    expect(page.locator("#upload-files table tr")).to_have_count(2)
    page.locator("#upload-transcripts textarea").fill("\n".join(TRANSCRIPTS))
    page.locator("#add-files").click()
    expect(page.locator("#upload-msg")).to_contain_text("already in the dataset as rec0002")
    expect(page.locator("#upload-msg")).not_to_contain_text("gradio")  # no upload temp paths
    # a failed add leaves nothing behind for the next transcript lines to match
    expect(page.locator("#upload-files table tr")).to_have_count(0)
    # a language the model does not know is refused where it is typed
    language = page.locator("#language input")
    language.fill("klingon")
    language.press("Enter")
    expect(page.locator("#language-msg")).to_contain_text("does not know the language")
    expect(language).to_have_value("English (en)")  # unchanged
    expect(rows).to_contain_text("en")  # the table shows each row's language
    # a source that is no manifest is refused before it is used
    page.locator("#data-source").get_by_text("A manifest, a Hub dataset").click()
    page.locator("#train-source textarea, #train-source input").first.fill("../../../etc/passwd")
    page.locator("#use-source").click()
    expect(page.locator("#source-msg")).to_contain_text("is not a manifest")
    page.locator("#data-source").get_by_text("My recordings").click()
    expect(page.locator("#check-report")).to_contain_text("3 rows: 3 valid")
    expect(page.locator("#check-report")).not_to_contain_text("Out of date")
    # a deleted row comes back with Undo; the check is out of date in between
    choose(page, "Row", "rec0003")
    page.locator("#delete-row").click()
    expect(page.locator("#data-msg")).to_contain_text("Deleted rec0003")
    expect(page.locator("#check-report")).to_contain_text("Out of date")
    page.locator("#undo-delete").click()
    expect(page.locator("#data-msg")).to_contain_text("Restored rec0003")
    expect(rows).to_contain_text(TRANSCRIPTS[1])
    expect(page.locator("#check-report")).not_to_contain_text("Out of date")
    shot(page, "1-data")

    # 2. train: a tiny random Whisper made in the project, a few steps, no tracking
    page.get_by_role("tab", name="2 · Train").click()
    expect(page.locator("#train-data")).to_contain_text("the 3 recordings of this project")
    choose(page, "Model family", "Local folder")
    page.locator("#make-tiny").click()
    expect(page.locator("#train-msg")).to_contain_text("Tiny random whisper model written")
    expect(page.locator("#model-folder textarea, #model-folder input").first).to_have_value(
        re.compile(r"models/tiny-whisper$")
    )
    expect(page.locator("#stop")).to_be_disabled()  # nothing runs
    # bad input is refused before a run exists: no epochs, a folder that is no model
    folder = page.locator("#model-folder textarea, #model-folder input").first
    tiny_folder = folder.input_value()
    folder.fill("/etc/passwd")
    page.locator("#epochs input").fill("")
    page.locator("#start").click()
    expect(page.locator("#train-msg")).to_contain_text("Epochs: type a number")
    expect(page.locator("#train-msg")).to_contain_text("/etc/passwd: no such folder")
    assert not list((project / "runs").glob("*/run.json"))
    expect(page.locator("#upload-msg")).not_to_contain_text("Epochs")  # stays in its tab
    folder.fill(tiny_folder)
    page.get_by_text("More options").click()
    for selector, value in (("#epochs input", "3"), ("#logging-steps input", "1")):
        page.locator(selector).fill(value)
        page.locator(selector).press("Tab")
        expect(page.locator(selector)).to_have_value(value)
    choose(page, "Tracking", "none")
    page.locator("#start").click()
    expect(page.locator("#train-msg")).to_contain_text("Started run")
    run_id = text_of(page, "#train-msg").split("Started run ")[1].rstrip(".")
    options = json.loads((project / "runs" / run_id / "run.json").read_text())["options"]
    assert options["report_to"] == "none" and options["logging_steps"] == 1
    assert options["model"].endswith("models/tiny-whisper") and options["num_train_epochs"] == 3
    expect(page.locator("#run-state")).to_contain_text(re.compile(r"step [1-3]/3"), timeout=60_000)
    shot(page, "2-training")  # the progress bar and the loss curve as they arrive
    expect(page.locator("#run-state")).to_have_attribute("data-state", "done", timeout=120_000)
    expect(page.locator("#run-state")).to_contain_text("step 3/3")
    expect(page.locator("#evals")).to_contain_text("base model")
    expect(page.locator("#evals")).to_contain_text("final model")
    expect(page.locator("#train-log")).to_contain_text("trainable parameters")
    expect(page.locator("#train-log")).not_to_contain_text("[0m")  # no colour codes
    # the run list follows the run's state without a Refresh; Stop is off again
    expect(page.locator("#run-pick input")).to_have_value(re.compile(r"· done"))
    expect(page.locator("#stop")).to_be_disabled()
    shot(page, "3-trained")

    # 3. evaluate: base vs fine-tuned, worst utterances with a word diff
    page.get_by_role("tab", name="3 · Evaluate").click()
    compare = page.locator("#eval-compare")
    expect(compare).to_contain_text("fine-tuned")
    expect(compare).to_contain_text("base model")
    expect(page.locator("#eval-worst del").first).to_be_attached()
    shot(page, "4-evaluate")

    # 4. try it: transcribe a file with the fine-tuned model
    page.get_by_role("tab", name="4 · Try it").click()
    page.locator("#try-audio input[type=file]").set_input_files(str(clips[0]))
    expect(page.locator(f"#try-audio {UPLOADED}")).to_be_attached()
    page.locator("#transcribe").click()
    expect(page.locator("#try-info")).to_contain_text("Transcribed with run", timeout=60_000)
    shot(page, "5-try")

    # 5. publish (dry run): the typed token is used for the request only
    page.get_by_role("tab", name="5 · Publish").click()
    page.locator("#hf-token input").fill(TOKEN)
    page.locator("#model-repo input, #model-repo textarea").first.fill("someone/tiny-ui-test")
    page.locator("#dry-run input").check()
    page.locator("#push-model").click()
    expect(page.locator("#publish-msg")).to_contain_text("Dry run: the upload folder is")
    expect(page.locator("#model-card")).to_contain_text("The model card (README.md)")
    expect(page.locator("#model-card")).to_contain_text("someone/tiny-ui-test")
    page.locator("#space input, #space textarea").first.fill("me/tiny-demo")
    page.locator("#demo-app").click()
    expect(page.locator("#publish-msg")).to_contain_text("Demo app written")
    expect(page.locator("#publish-msg")).to_contain_text("nothing was uploaded")  # a dry run
    expect(page.locator("#publish-msg")).to_contain_text("MODEL_ID=")  # runs offline
    expect(page.locator("#model-card")).not_to_contain_text(str(project))  # no local path
    shot(page, "6-publish")
    for path in project.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"the token was written to {path}"

    # a reload shows the dataset and the finished run again
    page.reload()
    expect(page.locator("#rows")).to_contain_text(TRANSCRIPTS[1])
    page.get_by_role("tab", name="2 · Train").click()
    expect(page.locator("#run-state")).to_have_attribute("data-state", "done")
    expect(page.locator("#evals")).to_contain_text("final model")
    expect(page.locator("#model-folder input, #model-folder textarea").first).to_have_value(
        re.compile(r"models/tiny-whisper$")
    )
    page.get_by_text("More options").click()
    expect(page.locator("#logging-steps input")).to_have_value("1")
    page.get_by_role("tab", name="5 · Publish").click()
    expect(page.locator("#model-repo input, #model-repo textarea").first).to_have_value(
        "someone/tiny-ui-test"
    )
    expect(page.locator("#dry-run input")).to_be_checked()  # Dry run comes back too
    shot(page, "7-reloaded")
    page.set_viewport_size({"width": 400, "height": 900})
    for name in ("1 · Data", "3 · Evaluate", "5 · Publish"):  # no tab hidden behind "…"
        expect(page.get_by_role("tab", name=name)).to_be_visible()
    shot(page, "8-narrow")
    print(f"browser journey: {time.perf_counter() - started:.0f} s")
