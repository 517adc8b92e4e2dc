"""The demo's whole loop from its one command, in Debian's Chromium: `rise demo` (as `make demo` runs it) serves the
UI with its background worker; a reviewer gives about 30 verdicts on the mood project with the keyboard, clicks
Retrain once, and a new version, trained and scored by that worker, serves with a better held-out score than the
demo base model's; its re-annotation of the unreviewed items follows."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.services.demo import DEFAULT_DEMO_MODEL, DEFAULT_MANIFEST
from db.models import Item, JobStatus, ModelVersion, Prediction, Project, Review, TrainingJob
from tests.utils.browser import free_port, save_screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (DEFAULT_DEMO_MODEL / "config.json").is_file(), reason="the demo model is not built"),
]

PROJECT = "demo-mood"
VERDICTS = 30
START_SECONDS = 180  # set-up and the demo model's annotation of every project, on a busy 2-core machine
RETRAIN_SECONDS = 420  # about 2 minutes on an idle 2-core machine; a CI machine may be busier
TIMEOUT_MS = 20_000


def _truths() -> dict[str, str]:
    import json

    manifest = json.loads(DEFAULT_MANIFEST.read_text())
    project = next(p for p in manifest["projects"] if p["name"] == PROJECT)
    return {Path(item["file"]).name: item["answer"] for item in project["items"]}


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"rise demo exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"rise demo did not serve within {START_SECONDS} s:\n{log.read_text()[-3000:]}")


def _wait_for(condition, seconds: float, what: str, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text(errors='replace')[-4000:]}")


def test_demo_reviews_retrains_and_serves_a_better_version(tmp_path, chromium_browser):
    data = tmp_path / "data"
    port = free_port()
    env = {**os.environ, "RISE_DATA_DIR": str(data), "RISE_HOST": "127.0.0.1", "RISE_PORT": str(port)}
    env.pop("RISE_DATABASE_URL", None)
    log = tmp_path / "demo.log"
    with log.open("wb") as output:
        demo = subprocess.Popen(
            [sys.executable, "-m", "app", "demo"], env=env, stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    engine = create_engine(f"sqlite:///{data / 'rise.db'}")
    worker_log = data / "worker.log"
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_until_up(url, demo, log)
        truths = _truths()
        with Session(engine) as session:
            project = session.scalars(select(Project).where(Project.name == PROJECT)).one()
            names = {item.id: item.original_name for item in project.items}
            labels = list(project.labels)

        page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)  # loopback: no login, the local admin reviews
        card = page.locator("#review-card")
        shown = re.compile(r"^Item #(\d+)$")
        # As a user would, pick the project once the page has loaded (its first project's item is on screen): a pick
        # made while the page load is still answering can be undone by it.
        card.get_by_text(shown).first.wait_for(timeout=TIMEOUT_MS)
        page.locator("#project-select input").click()
        page.get_by_role("option", name=re.compile(rf"^{PROJECT} ")).click()

        def current_item() -> int:
            number = card.get_by_text(shown).first
            number.wait_for(timeout=TIMEOUT_MS)
            return int(shown.match(number.inner_text().strip()).group(1))

        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while current_item() not in names:  # the screen still shows the project it opened with
            assert time.monotonic() < deadline, "the review screen never switched to the mood project"
            time.sleep(0.2)
        # The label menu of this project is on screen before any key is pressed, as a reviewer would see it.
        for label in labels:
            page.locator(f"#review-label input[value={label}]").wait_for(timeout=TIMEOUT_MS)
        for _ in range(VERDICTS):
            item_id = current_item()
            truth = truths[names[item_id]]
            chosen = page.locator("#review-label input[type=radio]:checked")
            if chosen.count() and chosen.get_attribute("value") == truth:
                page.keyboard.press("a")
            else:
                page.keyboard.press(str(labels.index(truth) + 1))
                page.locator(f"#review-label input[value={truth}]:checked").wait_for(timeout=TIMEOUT_MS)
                page.keyboard.press("s")
            card.get_by_text(re.compile(rf"^Item #(?!{item_id}$)\d+$")).first.wait_for(timeout=TIMEOUT_MS)
            # The card shows the next item before the server answers (it is staged in the page), but the label menu is
            # the server's: read it once the server's answer names the next item too.
            page.locator(f'#review-card .rise-stage:not([data-item="{item_id}"])').wait_for(timeout=TIMEOUT_MS)

        page.get_by_role("tab", name="Retrain").click()
        page.locator("#retrain-start").click()
        page.locator("#retrain-message").get_by_text(re.compile(r"Queued job #\d+")).wait_for(timeout=TIMEOUT_MS)

        def promoted() -> ModelVersion | None:
            with Session(engine) as session:
                job = session.scalars(select(TrainingJob).where(TrainingJob.kind == "train")).one()
                if job.status in (JobStatus.failed, JobStatus.cancelled):
                    raise AssertionError(f"the retraining {job.status.value}: {job.log[-3000:]}")
                return session.scalars(
                    select(ModelVersion).where(ModelVersion.job_id == job.id, ModelVersion.is_serving)
                ).one_or_none()

        with Session(engine) as session:
            verdicts = session.scalars(select(Review).join(Item).where(Item.project_id == project.id)).all()
        assert len(verdicts) == VERDICTS  # every key press gave one verdict
        version = _wait_for(promoted, RETRAIN_SECONDS, "a promoted version", worker_log)
        scores, compared = version.metrics["eval"], version.metrics["compared_with"]["metrics"]
        assert scores["items"] >= 30 and scores["accuracy"] > compared["accuracy"], version.metrics["promotion"]
        print(f"held-out accuracy {compared['accuracy']:.3f} -> {scores['accuracy']:.3f} on {scores['items']} items")
        page.locator("#retrain-versions").get_by_text(version.name).wait_for(timeout=TIMEOUT_MS)
        assert "serving" in page.locator("#retrain-versions").inner_text()

        def reannotated() -> list[Prediction]:
            with Session(engine) as session:
                return list(session.scalars(select(Prediction).where(Prediction.model_version_id == version.id)))

        fresh = _wait_for(reannotated, 120, "the re-annotation by the new version", worker_log)
        with Session(engine) as session:
            assert all(session.get(Item, p.item_id).project_id == version.project_id for p in fresh)
        save_screenshot(page, "demo-retrain.png")
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C: the demo stops its worker on the way out
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
        engine.dispose()
    # Nothing of the demo is left running: its worker stopped with it.
    assert not _processes_of(data)


def _processes_of(data: Path) -> list[int]:
    """Live processes started with this demo's data folder (the demo, its worker supervisor and worker)."""
    found = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and process.environ().get("RISE_DATA_DIR") == str(data):
                found.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
