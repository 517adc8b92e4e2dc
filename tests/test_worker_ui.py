"""The Retrain tab: its handlers (admins only, user and model text escaped, curves as plot data) and, in Chromium,
promote / roll back / cancel / policy with the live refresh running underneath."""

from __future__ import annotations

import re

import gradio as gr
import pytest
from sqlalchemy import select

from app.services import auth
from app.services import jobs as job_service
from app.services import model_versions as version_service
from app.ui import retrain_tab
from db.crud.model_versions import create_model_version
from db.models import Project
from tests.utils.retrain import make_ready_project
from tests.utils.ui import ADMIN, create_accounts

TIMEOUT_MS = 15_000


@pytest.fixture
def project(runtime):
    """Project "shapes", ready to train, with two registered versions (neither serving); its id."""
    with runtime.sessions.begin() as session:
        made = make_ready_project(session)
        for name in ("shapes-base", "shapes-v1"):
            create_model_version(session=session, project_id=made.id, name=name, base_model="org/base-model")
        return made.id


@pytest.fixture
def admin(runtime):
    return auth.ensure_user(runtime, "root", "admin")


class TestHandlers:
    def test_reviewers_are_refused(self, runtime, project):
        reviewer = auth.ensure_user(runtime, "ada", "reviewer")
        with pytest.raises(gr.Error, match="Only admins"):
            retrain_tab.on_retrain(runtime, reviewer, project, "", "", "auto")
        assert retrain_tab.refresh(runtime, reviewer, project, None) == {}  # changes nothing on screen
        assert job_service.list_jobs(runtime) == []

    def test_bad_settings_come_back_escaped(self, runtime, project, admin):
        html = retrain_tab.on_retrain(runtime, admin, project, "", "<img src=x onerror=alert(1)>", "auto")
        assert "rise-parse-error" in html and "<img" not in html and "&lt;img" in html

    def test_retrain_then_refresh_shows_the_job_and_versions(self, runtime, project, admin):
        message = retrain_tab.on_retrain(runtime, admin, project, "", "rft.max_steps=2\n\n", "python")
        assert "Queued job #1" in message

        update = retrain_tab.refresh(runtime, admin, project, 0)
        assert set(update) == set(retrain_tab.REFRESH_FIELDS)  # the first refresh sets every component
        assert update["jobs"][0][:3] == [1, "train", "queued"]
        assert "Job #1 (train): queued" in update["progress"]
        reward = update["reward_plot"]
        assert list(reward.columns) == ["step", "value", "stage"] and reward.empty
        versions = update["versions"]
        assert [row[1] for row in versions] == ["shapes-v1", "shapes-base"]
        assert [value for _, value in update["version_choice"]["choices"]] == [row[0] for row in versions]

        # Nothing changed since: the next refresh re-draws nothing; a cancel changes the queue and the job only.
        shown = update["shown"]
        assert set(retrain_tab.refresh(runtime, admin, project, 0, shown)) == {"shown"}
        job_service.cancel_job(runtime, 1)
        again = retrain_tab.refresh(runtime, admin, project, 0, shown)
        assert set(again) == {"jobs", "progress", "reward_plot", "loss_plot", "log", "shown"}
        assert again["jobs"][0][2] == "cancelled" and "cancelled" in again["progress"]

    def test_progress_and_curves_come_from_the_job_row(self, runtime, project, admin):
        job = job_service.request_retrain(runtime, project)
        view = job_service.JobView(
            **{
                **job.__dict__,
                "status": "failed",
                "error": "<b>boom</b>",
                "metrics": {"curves": {"sft": {"loss": [[1, 2.0], [2, 1.5]]}}, "last": {"loss": 1.5}},
            }
        )
        html = retrain_tab.progress_html(view)
        assert "&lt;b&gt;boom&lt;/b&gt;" in html and "loss 1.5" in html
        frame = retrain_tab.curves_frame(view, "loss")
        assert frame.to_dict("records") == [
            {"step": 1, "value": 2.0, "stage": "sft"},
            {"step": 2, "value": 1.5, "stage": "sft"},
        ]

    def test_policy_form_round_trip(self, runtime, project, admin):
        html = retrain_tab.on_save_policy(runtime, admin, project, 25, 0)
        assert "Policy: not due" in html
        assert retrain_tab.load_policy(runtime, admin, project)[:2] == (25, None)
        assert "rise-parse-error" in retrain_tab.on_save_policy(runtime, admin, project, -3, None)


@pytest.mark.browser
def test_admin_promotes_rolls_back_cancels_and_sets_a_policy(runtime, project, serve_app, chromium_browser):
    create_accounts(runtime)
    queued = job_service.request_retrain(runtime, project)
    app = serve_app(runtime, require_login=True)
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url)
    page.locator("#login-username input, #login-username textarea").fill(ADMIN[0])
    page.locator("#login-password input").fill(ADMIN[1])
    page.locator("#login-submit").click()
    page.get_by_test_id("signed-in-as").wait_for(timeout=TIMEOUT_MS)
    page.get_by_role("tab", name="Retrain").click()
    message = page.locator("#retrain-message")

    # Pick a version, let the live refresh tick (it must not lose the choice), then promote it.
    page.locator("#retrain-versions").get_by_text("shapes-v1").wait_for(timeout=TIMEOUT_MS)
    page.locator("#retrain-version input").click()
    page.get_by_role("option", name=re.compile("shapes-v1")).click()
    page.wait_for_timeout(int(retrain_tab.REFRESH_SECONDS * 1000 * 2))
    page.locator("#retrain-promote").click()
    message.get_by_text("shapes-v1 serves new predictions now.").wait_for(timeout=TIMEOUT_MS)
    assert version_service.serving_version(runtime, project).name == "shapes-v1"

    page.locator("#retrain-rollback").click()
    message.get_by_text("Rolled back: shapes-base serves new predictions now.").wait_for(timeout=TIMEOUT_MS)
    assert version_service.serving_version(runtime, project).name == "shapes-base"

    page.locator("#retrain-cancel").click()
    message.get_by_text(f"Job #{queued.id} cancelled.").wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelector('#retrain-jobs').innerText.includes('cancelled before it ran')",
        timeout=TIMEOUT_MS,
    )

    # The form was filled when the project was chosen at sign-in.
    page.locator("#retrain-policy").get_by_text(re.compile(r"^Policy: not due")).wait_for(timeout=TIMEOUT_MS)
    page.get_by_label("Retrain after this many new verdicts (empty: off)").fill("40")
    page.locator("#retrain-policy-save").click()
    page.locator("#retrain-policy").get_by_text(re.compile("0 of 40 new verdicts")).wait_for(timeout=TIMEOUT_MS)
    with runtime.sessions() as session:
        assert session.scalars(select(Project.retrain_every_verdicts)).one() == 40
