"""Retraining from the UI, end to end on CPU with the tiny model, in Debian's Chromium: an admin gives verdicts in the
review screen, clicks Retrain, a `rise worker` process picks the job and runs every pipeline stage for a step
(through `accelerate launch`), registers and evaluates a version that the Retrain tab then lists as serving, and
the next predictions come from that version."""

from __future__ import annotations

import re
import signal

import pytest
from sqlalchemy import select, update

from db.models import Item, JobStatus, ModelVersion, Prediction, Project, Split, TrainingJob
from tests.utils.browser import save_screenshot
from tests.utils.retrain import TINY_PIPELINE, start_worker_process, wait_for_job
from tests.utils.ui import ADMIN, create_accounts, seed_detection_project

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
TRAINING_TIMEOUT_MS = 300_000  # every stage's process start, one step each, two evaluations; minutes on a busy CPU
UI_TIMEOUT_MS = 30_000  # the tab refreshes every few seconds


def sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(url)
    page.locator("#login-username input, #login-username textarea").fill(username)
    page.locator("#login-password input").fill(password)
    page.locator("#login-submit").click()
    page.get_by_test_id("signed-in-as").wait_for(timeout=TIMEOUT_MS)


def wait_for_item(page, item_id: int, timeout: int = TIMEOUT_MS) -> None:
    page.locator("#review-card").get_by_text(re.compile(rf"^Item #{item_id}$")).wait_for(timeout=timeout)


def test_retrain_from_the_ui_serves_a_new_version(runtime, tmp_path, tiny_model_dir, serve_app, chromium_browser):
    seeded = seed_detection_project(runtime, tmp_path, n_items=6)
    items = seeded.item_ids  # queue order
    create_accounts(runtime)
    with runtime.sessions.begin() as session:
        # The first two items in the queue are held out: their verdicts become the evaluation slice.
        session.execute(update(Item).values(split=Split.train))
        session.execute(update(Item).where(Item.id.in_(items[:2])).values(split=Split.eval))
        session.get(Project, seeded.project_id).default_model = str(tiny_model_dir)
    worker = start_worker_process(
        runtime.settings.data_dir,
        "--lease-seconds", "20", "--idle-seconds", "0.3", "--no-policies",
        log_path=tmp_path / "worker.log",
    )  # fmt: skip
    try:
        app = serve_app(runtime, require_login=True)
        page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, app.url, *ADMIN)

        # Verdicts in the review screen: accept the first four proposals (two held out, two for training).
        wait_for_item(page, items[0], timeout=60_000)  # the worker process starts up beside it
        for index in range(4):
            page.keyboard.press("a")
            wait_for_item(page, items[index + 1])

        # Retrain from the admin's Retrain tab, with settings that run each stage for one step.
        page.get_by_role("tab", name="Retrain").click()
        page.locator("#retrain-settings textarea").fill("\n".join(TINY_PIPELINE))
        page.locator("#retrain-min-items input").fill("2")  # the two held-out verdicts may promote it
        page.locator("#retrain-start").click()
        page.locator("#retrain-message").get_by_text(re.compile(r"Queued job #\d+")).wait_for(timeout=TIMEOUT_MS)
        with runtime.sessions() as session:
            job_id = session.scalars(select(TrainingJob.id).where(TrainingJob.kind == "train")).one()

        # The tab follows the job live, then lists the new version as serving.
        page.locator("#retrain-progress").get_by_text(re.compile(r"Job #\d+ \(train\): running")).wait_for(
            timeout=TRAINING_TIMEOUT_MS
        )
        ended = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
        job = wait_for_job(runtime, job_id, lambda j: j.status in ended, 500, "the job to end")
        assert job.status is JobStatus.succeeded, job.log[-3000:]
        versions = page.locator("#retrain-versions")
        versions.get_by_text("scenes-v1").wait_for(timeout=UI_TIMEOUT_MS)
        page.locator("#retrain-progress").get_by_text(re.compile(r"succeeded")).wait_for(timeout=UI_TIMEOUT_MS)
        assert "serving" in versions.inner_text()
        assert "map50" in versions.inner_text()  # its held-out score
        assert "accelerate.commands.launch" in job.log
        assert set(job.metrics["curves"]) == {"rise_cot", "sft", "rft"}
        assert job.metrics["curves"]["rise_cot"]["reward"] and job.metrics["curves"]["sft"]["loss"]
        page.locator("#retrain-loss canvas, #retrain-loss svg").first.wait_for(timeout=TIMEOUT_MS)
        save_screenshot(page, "retrain.png")

        with runtime.sessions() as session:
            version = session.scalars(select(ModelVersion).where(ModelVersion.name == "scenes-v1")).one()
            assert version.is_serving and version.job_id == job_id and version.adapter_path
            assert version.metrics["eval"]["items"] == 2
            reannotation = session.scalars(select(TrainingJob).where(TrainingJob.kind == "annotate")).one()

        # New predictions come from it: the unreviewed items were annotated by the new version ...
        wait_for_job(runtime, reannotation.id, lambda j: j.status is JobStatus.succeeded, 300, "the re-annotation")
        with runtime.sessions() as session:
            fresh = session.scalars(select(Prediction).where(Prediction.model_version_id == version.id)).all()
        assert sorted(p.item_id for p in fresh) == sorted(items[4:])
        assert all(p.model_name == "scenes-v1" for p in fresh)

        # ... and the review screen now proposes its answer.
        page.reload()
        sign_in(page, app.url, *ADMIN)
        wait_for_item(page, items[4])
        assert "scenes-v1" in page.locator("#review-card").inner_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        finally:
            worker.kill()
