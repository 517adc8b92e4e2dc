"""UI handlers called directly on a real database: what each review button records, how edits become answers,
who may use the admin handlers, and how the screen is filled. The browser tests cover the wiring."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from sqlalchemy import select

from app.runtime import Runtime
from app.services import auth
from app.services import review as review_service
from app.services.login_throttle import LoginThrottle
from app.settings import load_settings
from app.ui import admin, dashboard, login, projects, render, review
from app.ui.display import display_scale
from app.ui.review_actions import Edits, ReviewInputError, accept, correct, load, reject, skip, undo
from app.ui.shortcuts import ANNOTATOR_KEYS, REVIEW_SHORTCUTS
from app.ui.web_app import LoginRequiredError, build_web_app
from app.worker.loop import Worker, WorkerConfig
from db.models import Review
from tests.utils.factories import make_project, write_png, write_pngs
from tests.utils.review_factories import make_classification_queue, make_predicted_items, make_reviewer
from tests.utils.ui import seed_detection_project

BOX_A = {"label": "circle", "box": [4.0, 4.0, 20.0, 20.0]}
BOX_B = {"label": "square", "box": [30.0, 30.0, 50.0, 50.0]}


def annotator_value(answer: list[dict], scale: int) -> dict:
    """What the annotator sends back when the reviewer left `answer` as drawn on an image shown `scale` times."""
    return {"image": "display.png", "boxes": render.answer_to_boxes("detection", answer, ["circle", "square"], scale)}


def verdicts(runtime: Runtime) -> list[tuple[int, str, object, bool]]:
    with runtime.sessions() as session:
        rows = session.scalars(select(Review).where(Review.undone_at.is_(None)).order_by(Review.id))
        return [(r.item_id, r.verdict.value, r.corrected_answer, r.reasoning_wrong) for r in rows]


@pytest.fixture
def detection(runtime: Runtime):
    """Three detection items predicted [BOX_A, BOX_B] (64x64, scores rising), one reviewer, the first task leased."""
    with runtime.sessions.begin() as session:
        project = make_project(session, name="boxes", task_type="detection", labels=("circle", "square"))
        items = make_predicted_items(session, project, [[BOX_A, BOX_B]] * 3, scores=[0.1, 0.2, 0.3])
        user_id = make_reviewer(session).id
        ids = [item.id for item in items]
    queue = review_service.QueueFilter()
    task = load(runtime, user_id=user_id, project_id=project.id, queue=queue).task
    return project.id, ids, user_id, task


class TestVerdictActions:
    def test_accept_with_nothing_edited_records_an_accept_and_returns_the_next_item(self, runtime, detection):
        _, ids, user_id, task = detection
        edits = Edits(annotator=annotator_value([BOX_A, BOX_B], 8), scale=8, reasoning_wrong=True)
        outcome = accept(runtime, user_id=user_id, task=task, edits=edits, shown_at=None, queue=None)
        assert outcome.task.item_id == ids[1] and "accepted" in outcome.message
        assert verdicts(runtime) == [(ids[0], "accept", None, True)]

    def test_a_moved_box_is_saved_in_original_pixels_as_a_correction(self, runtime, detection):
        _, ids, user_id, task = detection
        value = annotator_value([BOX_A, BOX_B], 8)
        value["boxes"][0].update(xmin=value["boxes"][0]["xmin"] + 40, xmax=value["boxes"][0]["xmax"] + 40)
        outcome = correct(
            runtime, user_id=user_id, task=task, edits=Edits(annotator=value, scale=8), shown_at=None, queue=None
        )
        assert outcome.task.item_id == ids[1]
        [(item_id, verdict, answer, _)] = verdicts(runtime)
        assert (item_id, verdict) == (ids[0], "correct")
        assert answer == [{"label": "circle", "box": [9.0, 4.0, 25.0, 20.0]}, BOX_B]

    def test_accept_after_editing_saves_what_the_reviewer_saw(self, runtime, detection):
        _, ids, user_id, task = detection
        edits = Edits(annotator=annotator_value([BOX_A], 8), scale=8)  # BOX_B deleted on screen
        outcome = accept(runtime, user_id=user_id, task=task, edits=edits, shown_at=None, queue=None)
        assert "saved as a correction" in outcome.message
        assert verdicts(runtime) == [(ids[0], "correct", [BOX_A], False)]

    def test_correct_without_an_edit_is_refused_and_records_nothing(self, runtime, detection):
        _, _, user_id, task = detection
        with pytest.raises(ReviewInputError, match="Nothing was changed"):
            correct(
                runtime,
                user_id=user_id,
                task=task,
                edits=Edits(annotator=annotator_value([BOX_A, BOX_B], 1)),
                shown_at=None,
                queue=None,
            )
        assert verdicts(runtime) == []

    def test_an_unlabelled_box_is_refused(self, runtime, detection):
        _, _, user_id, task = detection
        value = annotator_value([BOX_A], 1)
        value["boxes"].append({"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9, "label": ""})
        with pytest.raises(ReviewInputError, match="Give box 2 a label"):
            correct(runtime, user_id=user_id, task=task, edits=Edits(annotator=value), shown_at=None, queue=None)

    def test_reject_keeps_the_comment_and_time_on_screen(self, runtime, detection):
        _, ids, user_id, task = detection
        import time

        reject(
            runtime,
            user_id=user_id,
            task=task,
            edits=Edits(comment="  two circles  "),
            shown_at=time.monotonic() - 2,
            queue=None,
        )
        with runtime.sessions() as session:
            row = session.scalars(select(Review)).one()
        assert (row.verdict.value, row.comment) == ("reject", "two circles") and row.time_spent_ms >= 2000

    def test_skip_then_undo_brings_back_the_last_verdict(self, runtime, detection):
        project_id, ids, user_id, task = detection
        after_accept = accept(
            runtime,
            user_id=user_id,
            task=task,
            edits=Edits(annotator=annotator_value([BOX_A, BOX_B], 1)),
            shown_at=None,
            queue=None,
        )
        after_skip = skip(runtime, user_id=user_id, task=after_accept.task, queue=None)
        assert after_skip.task.item_id == ids[2]
        undone = undo(runtime, user_id=user_id, project_id=project_id, current=after_skip.task)
        assert undone.task.item_id == ids[0] and verdicts(runtime) == []
        nothing = undo(runtime, user_id=user_id, project_id=project_id, current=undone.task)
        assert nothing.task is undone.task and nothing.message == "Nothing to undo."

    def test_buttons_without_an_item_on_screen_explain_what_to_do(self, runtime, detection):
        _, _, user_id, _ = detection
        with pytest.raises(ReviewInputError, match="no item on screen"):
            reject(runtime, user_id=user_id, task=None, edits=Edits(), shown_at=None, queue=None)


class TestClassificationEdits:
    def test_a_changed_label_is_a_correction_and_a_distribution_is_renormalised(self, runtime):
        with runtime.sessions.begin() as session:
            single = make_project(session, name="single", labels=("circle", "square"))
            make_predicted_items(session, single, ["circle"])
            mixed = make_project(session, name="mixed", labels=("joy", "fear"), distribution=True)
            make_predicted_items(session, mixed, [{"joy": 0.5, "fear": 0.5}], first_seed=10)
            user_id = make_reviewer(session).id
        queue = review_service.QueueFilter()
        task = load(runtime, user_id=user_id, project_id=single.id, queue=queue).task
        correct(runtime, user_id=user_id, task=task, edits=Edits(label="square"), shown_at=None, queue=None)
        task = load(runtime, user_id=user_id, project_id=mixed.id, queue=queue).task
        assert task.distribution and render.distribution_rows(task.answer, task.labels) == [
            ["joy", 0.5],
            ["fear", 0.5],
        ]
        with pytest.raises(ReviewInputError, match="above zero"):
            correct(
                runtime,
                user_id=user_id,
                task=task,
                edits=Edits(distribution_rows=[["joy", 0], ["fear", 0]]),
                shown_at=None,
                queue=None,
            )
        correct(
            runtime,
            user_id=user_id,
            task=task,
            edits=Edits(distribution_rows=[["joy", 3], ["fear", 1]]),
            shown_at=None,
            queue=None,
        )
        answers = [answer for _, _, answer, _ in verdicts(runtime)]
        assert answers[0] == "square" and answers[1] == pytest.approx({"joy": 0.75, "fear": 0.25})

    def test_a_written_reasoning_goes_with_a_correction_and_turns_an_accept_into_one(self, runtime):
        with runtime.sessions.begin() as session:
            project = make_project(session, name="single", labels=("circle", "square"))
            make_predicted_items(session, project, ["circle", "circle", "circle"])
            user_id = make_reviewer(session).id
        step = {"runtime": runtime, "user_id": user_id, "shown_at": None, "queue": review_service.QueueFilter()}
        task = load(runtime, user_id=user_id, project_id=project.id, queue=step["queue"]).task
        task = correct(**step, task=task, edits=Edits(label="square", reasoning=" Four corners. ")).task
        # The label is right but the reviewer explains it better than the model did: saved as a correction.
        outcome = accept(**step, task=task, edits=Edits(label="circle", reasoning="Round, no corners."))
        assert "saved as a correction" in outcome.message
        with pytest.raises(ReviewInputError, match="saved with a correction"):
            reject(**step, task=outcome.task, edits=Edits(label="circle", reasoning="Not sure."))
        with runtime.sessions() as session:
            rows = session.scalars(select(Review).order_by(Review.id)).all()
            assert [(r.verdict.value, r.corrected_answer, r.corrected_cot) for r in rows] == [
                ("correct", "square", "Four corners."),
                ("correct", "circle", "Round, no corners."),
            ]


class TestScreen:
    def test_a_small_image_is_enlarged_and_its_boxes_scaled_with_it(self, runtime, tmp_path, monkeypatch):
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
        seeded = seed_detection_project(runtime, tmp_path, n_items=1)
        with runtime.sessions.begin() as session:
            user_id = make_reviewer(session).id
        task = review_service.next_task(runtime, project_id=seeded.project_id, user_id=user_id)
        updates = review.screen_updates(task, "")
        state, view, annotator = updates["task"], updates["view"], updates["annotator"]
        assert state is task and view["scale"] == display_scale(64, 64) == 8
        shown = annotator["value"]
        assert Path(shown["image"]).is_relative_to(tmp_path / "gradio")
        first = seeded.answers[task.item_id][0]
        assert [shown["boxes"][0][k] for k in ("xmin", "ymin", "xmax", "ymax")] == [v * 8 for v in first["box"]]
        assert updates["accept"]["interactive"] is True

    def test_an_admins_card_names_the_models_folder_in_a_tooltip_and_a_reviewers_never_shows_it(
        self, runtime, tmp_path, monkeypatch
    ):
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
        folder = '/srv/"rise"/<models>/shapes-model'
        admin_user = auth.ensure_user(runtime, "root", role="admin")
        reviewer = auth.ensure_user(runtime, "ada", role="reviewer")
        for user in (admin_user, reviewer):
            # A project each: the first user's queue holds the other's items leased.
            with runtime.sessions.begin() as session:
                project = make_project(session, name=user.username, task_type="classification", labels=("a", "b"))
                make_predicted_items(session, project, ["a", "b"], model_name=folder)
            card = review.load_queue(runtime, user, project.id, "", "", "", "")["card"]
            assert "shapes-model" in card
            if user is admin_user:
                assert 'title="/srv/&quot;rise&quot;/&lt;models&gt;/shapes-model">shapes-model</span>' in card
            else:
                assert "/srv/" not in card and "models" not in card
        _, models = review.filter_choices(runtime, reviewer, project.id)
        assert models["choices"][1] == ("shapes-model", folder)  # shown by its name, filtered by its full name

    def test_a_missing_image_can_still_be_accepted_but_not_edited(self, runtime, tmp_path, monkeypatch):
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
        seeded = seed_detection_project(runtime, tmp_path, n_items=2)
        with runtime.sessions.begin() as session:
            user_id = make_reviewer(session).id
        task = review_service.next_task(runtime, project_id=seeded.project_id, user_id=user_id)
        Path(task.image_path).unlink()
        updates = review.screen_updates(task, "")
        view, annotator = updates["view"], updates["annotator"]
        assert view["editable"] is False and annotator["visible"] is False
        assert "The image cannot be shown" in updates["status"]
        # Whatever boxes a hidden annotator still holds (an earlier item's) are not taken for an edit.
        stale = annotator_value([BOX_A], 8)
        edits = review._edits(view, stale, None, None, False, "", "")
        with pytest.raises(ReviewInputError, match="cannot be edited"):
            correct(runtime, user_id=user_id, task=task, edits=edits, shown_at=None, queue=None)
        accept(runtime, user_id=user_id, task=task, edits=edits, shown_at=None, queue=None)
        assert verdicts(runtime) == [(task.item_id, "accept", None, False)]

    def test_an_empty_queue_disables_the_verdict_buttons(self):
        updates = review.screen_updates(None, "Nothing left to review with these filters.")
        assert updates["task"] is None and "Nothing left" in updates["card"]
        assert all(updates[name]["interactive"] is False for name in review.VERDICT_BUTTONS)

    def test_the_empty_screen_sets_every_component_and_updates_name_only_screen_components(self):
        empty = review.screen_updates(None, "")
        # Leaving the queue resets everything a task could have changed.
        assert set(empty) == set(review.SCREEN_FIELDS)
        tab = review.ReviewTab(**{name: object() for name in review.ReviewTab.__dataclass_fields__})
        assert len(tab.components(empty)) == len(review.SCREEN_FIELDS)
        with pytest.raises(KeyError, match="Not a review screen component"):
            tab.components({"cards": ""})

    def test_the_next_item_of_the_same_kind_sends_plain_values_only(self, runtime, tmp_path, monkeypatch):
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
        with runtime.sessions.begin() as session:
            project, items = make_classification_queue(session, 3)
            user_id = make_reviewer(session).id
        for seed, item in enumerate(items):
            write_png(runtime.settings.media_dir / item.media_path, seed)
        task = review_service.next_task(runtime, project_id=project.id, user_id=user_id, lookahead=2)
        first = review.screen_updates(task, "")
        assert first["label_radio"]["choices"] == ["circle", "square"]

        after = review_service.submit_verdict(
            runtime, user_id=user_id, item_id=task.item_id, verdict="accept", lookahead=2
        )
        second = review.screen_updates(after, "", first["view"])

        # Every component gets a plain value (no gr.update, none left out, each of which Gradio would build anew):
        # the label menu its label, the buttons their own labels, the hidden editors nothing.
        assert set(second) == set(review.SCREEN_FIELDS)
        assert not [name for name, value in second.items() if isinstance(value, dict) and "__type__" in value]
        assert second["label_radio"] == after.answer
        assert (second["annotator"], second["distribution"]) == (None, None)
        assert second["accept"] == review.VERDICT_BUTTON_LABELS["accept"]
        # The item after it is already in the page, hidden, with its image.
        ahead = after.upcoming[0].item_id
        assert 'data-show-early="1"' in second["card"]
        assert f'<div class="rise-slide" data-item="{ahead}" hidden><div class="rise-card">' in second["card"]
        assert f'<div class="rise-slide" data-item="{ahead}" hidden><a href="gradio_api/file=' in second["image"]


class TestAccounts:
    def test_sign_in_accepts_the_right_password_only(self, runtime):
        auth.create_user(runtime, "ada", "ada-password")
        throttle = LoginThrottle()
        user, message = login.sign_in(runtime, "ada", "ada-password", throttle=throttle, address="10.0.0.1")
        assert user.username == "ada" and message == ""
        nobody, message = login.sign_in(runtime, "ada", "wrong-password", throttle=throttle, address="10.0.0.1")
        assert nobody is None and "Wrong username or password" in message

    def test_admin_handlers_refuse_reviewers(self, runtime):
        reviewer = auth.create_user(runtime, "ada", "ada-password")
        with pytest.raises(gr.Error, match="Only admins"):
            admin.on_create_user(runtime, reviewer, "eve", "eve-password", "admin")
        with pytest.raises(gr.Error, match="Only admins"):
            projects.on_create(runtime, reviewer, "p", "detection", "circle", False, "")
        with pytest.raises(gr.Error, match="Sign in first"):
            admin.on_refresh_runs(runtime, None)
        assert [u.username for u in auth.list_users(runtime)] == ["ada"]

    def test_an_admin_creates_accounts_and_sees_why_a_bad_one_fails(self, runtime):
        boss = auth.create_user(runtime, "boss", "boss-password", role="admin")
        rows, _, message = admin.on_create_user(runtime, boss, "bob", "bob-password", "reviewer")
        assert ["bob", "reviewer", "yes"] in rows and "Created reviewer" in message
        _, _, message = admin.on_create_user(runtime, boss, "bob", "short", "reviewer")
        assert "too short" in message

    def test_login_is_required_off_loopback_and_optional_on_it(self, tmp_path):
        from app.runtime import open_runtime

        exposed = open_runtime(
            load_settings({"RISE_DATA_DIR": str(tmp_path / "d"), "RISE_HOST": "0.0.0.0"}), upgrade=True
        )
        try:
            with pytest.raises(LoginRequiredError, match="Refusing to run without login on 0.0.0.0"):
                build_web_app(exposed, require_login=False)
            assert isinstance(build_web_app(exposed), gr.Blocks)  # login on by default
            assert [u.username for u in auth.list_users(exposed)] == []  # no local account created
        finally:
            exposed.close()

    def test_a_page_load_that_finishes_after_a_sign_in_changes_nothing(self, runtime):
        # On a busy server the page's load event can finish after the reviewer signed in; it must not sign them out.
        demo = build_web_app(runtime, require_login=True)
        [page_load] = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_page_load"]
        assert page_load.fn(None) == {}  # an update that names no component changes none
        boss = auth.get_user_info(runtime, auth.create_user(runtime, "boss", "boss-password", role="admin").id)
        assert boss in page_load.fn(boss).values()  # a session that is signed in is shown as such

    def test_without_login_on_loopback_the_app_acts_as_the_local_admin(self, runtime):
        build_web_app(runtime)
        [local] = auth.list_users(runtime)
        assert (local.username, local.role) == (admin.LOCAL_USERNAME, "admin")
        assert auth.authenticate(runtime, "local", "") is None  # no password can sign in as it


class TestProjectsTab:
    def test_create_upload_and_annotate_with_a_tiny_model(self, runtime, tmp_path, tiny_model_dir):
        boss = auth.create_user(runtime, "boss", "boss-password", role="admin")
        selector, rows, message = projects.on_create(
            runtime, boss, "shapes", "classification", "circle, square", False, ""
        )
        assert "Created project &#x27;shapes&#x27;" in message and rows[0][:3] == [
            "shapes",
            "classification",
            "circle, square",
        ]
        calls = []
        files = [str(p) for p in write_pngs(tmp_path / "upload", 3, size=(32, 32))] + [str(tmp_path / "missing.png")]
        rows, message = projects.on_upload(
            runtime, boss, selector["value"], files, "", progress=lambda *a, **k: calls.append(a)
        )
        assert rows[0][3] == 3 and "Added 3" in message and "skipped 1" in message
        assert calls[-1] == ((3, 3),)  # the missing file is reported as skipped before the images are read
        message = projects.on_annotate(runtime, boss, selector["value"], "")
        assert "no serving model version and no default model: name a model" in message  # nothing to default to
        message = projects.on_annotate(runtime, boss, selector["value"], str(tiny_model_dir))
        assert "Queued job #" in message and "Runs tab" in message
        Worker(runtime, WorkerConfig(lease_seconds=30, check_policies=False)).run(max_jobs=1)
        [run] = admin.on_refresh_runs(runtime, boss)  # only the queued request became a job
        assert run[1:5] == ["shapes", str(tiny_model_dir), "succeeded", "3/3"]
        assert "annotated 3 of 3 items" in run[8]
        with runtime.sessions.begin() as session:
            user_id = make_reviewer(session).id
        assert review_service.next_task(runtime, project_id=selector["value"], user_id=user_id) is not None

    def test_a_bad_project_shows_the_reason_and_creates_nothing(self, runtime):
        boss = auth.create_user(runtime, "boss", "boss-password", role="admin")
        _, _, message = projects.on_create(runtime, boss, "one", "classification", "circle", False, "")
        assert "at least two labels" in message and projects.project_rows(runtime) == []


def test_dashboard_counts_the_verdicts(runtime, detection):
    project_id, ids, user_id, task = detection
    reviewer = auth.get_user_info(runtime, user_id)
    reject(runtime, user_id=user_id, task=task, edits=Edits(), shown_at=None, queue=None)
    update = dashboard.refresh(runtime, reviewer, project_id)
    assert "1 of 3 items reviewed" in update["summary"]
    assert update["verdicts"].set_index("verdict")["count"].to_dict() == {"accept": 0, "correct": 0, "reject": 1}
    assert [row[:2] for row in update["reviewers"]] == [["ada", 1]]
    assert update["metrics"].empty


def test_every_shortcut_targets_an_element_of_the_app_and_spares_the_annotator_keys(runtime):
    demo = build_web_app(runtime)
    elem_ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert {s.elem_id for s in REVIEW_SHORTCUTS} <= elem_ids
    assert not ANNOTATOR_KEYS & {s.key for s in REVIEW_SHORTCUTS}
    assert len({s.key for s in REVIEW_SHORTCUTS}) == len(REVIEW_SHORTCUTS)


def test_rise_serve_refuses_to_run_without_login_on_a_public_address(runtime):
    from typer.testing import CliRunner

    from app.cli import cli
    from app.commands import serve  # noqa: F401  (registers the command)

    env = {"RISE_DATA_DIR": str(runtime.settings.data_dir), "NO_COLOR": "1", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--no-login"], env=env)
    assert result.exit_code == 1 and "Refusing to run without login on 0.0.0.0" in result.output


def test_no_event_shows_its_progress_on_a_layout_or_a_plot(runtime):
    # The page re-reads every progress target of every event, and all that is inside it, on each later event: a
    # view, a tab or a plot's points as a target would be read again on every review key press.
    demo = build_web_app(runtime, require_login=True)
    for fn in demo.fns.values():
        targets = fn.show_progress_on or fn.outputs
        heavy = [
            type(block).__name__
            for block in targets
            if getattr(block, "children", None) or isinstance(block, gr.LinePlot | gr.BarPlot | gr.ScatterPlot)
        ]
        assert not heavy, f"{fn.name} shows its progress on {heavy}"
