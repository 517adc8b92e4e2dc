"""The schema's guarantees, checked on SQLite and PostgreSQL: references, cascades, uniqueness, enums, JSON answers."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, Enum, delete, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from db.crud.review_queue import AnswerReaderMissingError, encode_labels, sync_review_queue
from db.models import (
    TASK_TYPES,
    Annotation,
    AnnotationSource,
    Base,
    Item,
    JobKind,
    ModelVersion,
    Prediction,
    Project,
    Review,
    ReviewQueueEntry,
    TrainingJob,
    User,
    Verdict,
)
from db.session import make_engine, make_session_factory
from rise.answers import answer_labels
from rise.tasks import TaskType


def add_project(session: Session, name: str, *, items: int = 2) -> Project:
    """A project whose items each carry a prediction, a review of it and the annotation that review produced, plus a
    training job and the model version it registered."""
    reviewer = session.scalar(select(User).where(User.username == "rev")) or User(username="rev", password_hash="x")
    project = Project(name=name, task_type=TaskType.classification, labels=["cat", "dog"])
    session.add_all([reviewer, project])
    reviews = []
    for n in range(items):
        item = Item(
            project=project, sha256=f"{name}-{n}".ljust(64, "0"), media_path=f"{name}/{n}.png", width=8, height=8
        )
        prediction = Prediction(item=item, model_name="tiny", raw_text="<answer>cat</answer>", answer="cat")
        reviews.append(Review(item=item, prediction=prediction, reviewer=reviewer, verdict=Verdict.accept))
        # SQLAlchemy 2 does not cascade a child into the session through the backref of its parent.
        session.add_all([item, prediction, reviews[-1]])
    session.flush()
    for review in reviews:
        session.add(Annotation(item=review.item, answer="cat", source=AnnotationSource.accept, review_id=review.id))
    job = TrainingJob(project_id=project.id, kind=JobKind.train)
    session.add(job)
    session.flush()
    session.add(ModelVersion(project_id=project.id, name=f"{name}-v1", base_model="tiny", job_id=job.id))
    session.flush()
    return project


def rows_of_project(session: Session, project_id: int) -> dict[str, int]:
    item_ids = select(Item.id).where(Item.project_id == project_id)

    def count(model: type[Base], condition) -> int:
        return session.scalar(select(func.count()).select_from(model).where(condition))

    return {
        "items": count(Item, Item.project_id == project_id),
        "predictions": count(Prediction, Prediction.item_id.in_(item_ids)),
        "reviews": count(Review, Review.item_id.in_(item_ids)),
        "annotations": count(Annotation, Annotation.item_id.in_(item_ids)),
        "training_jobs": count(TrainingJob, TrainingJob.project_id == project_id),
        "model_versions": count(ModelVersion, ModelVersion.project_id == project_id),
    }


def total_rows(session: Session) -> dict[str, int]:
    models = [Item, Prediction, Review, Annotation, TrainingJob, ModelVersion]
    return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) for model in models}


@pytest.fixture
def session(db_engine: Engine):
    with make_session_factory(db_engine)() as session:
        yield session


class TestForeignKeys:
    def test_item_of_a_missing_project_is_refused(self, session):
        session.add(Item(project_id=999, sha256="a" * 64, media_path="a.png", width=1, height=1))
        with pytest.raises(IntegrityError):
            session.flush()

    def test_prediction_of_a_missing_item_is_refused(self, session):
        session.add(Prediction(item_id=999, model_name="tiny"))
        with pytest.raises(IntegrityError):
            session.flush()


class TestProjectDeletion:
    @pytest.mark.parametrize("how", ["orm", "sql"])
    def test_deleting_a_project_removes_everything_under_it_and_nothing_else(self, session, how):
        doomed = add_project(session, "doomed")
        kept = add_project(session, "kept")
        session.commit()
        kept_before = rows_of_project(session, kept.id)
        assert all(kept_before.values()), kept_before

        if how == "orm":
            session.delete(doomed)
        else:
            # A bulk DELETE bypasses ORM cascades: only the database's ON DELETE CASCADE acts.
            session.execute(delete(Project).where(Project.id == doomed.id))
        session.commit()
        session.expunge_all()

        assert rows_of_project(session, doomed.id) == dict.fromkeys(kept_before, 0)
        assert rows_of_project(session, kept.id) == kept_before
        # Nothing was merely detached (a NULL project_id) instead of deleted: the tables hold the kept rows only.
        assert total_rows(session) == kept_before
        assert session.scalar(select(func.count()).select_from(User)) == 1


class TestUniqueness:
    def test_the_same_image_twice_in_one_project_is_refused(self, session):
        project = add_project(session, "p", items=1)
        session.add(Item(project=project, sha256="p-0".ljust(64, "0"), media_path="again.png", width=8, height=8))
        with pytest.raises(IntegrityError):
            session.flush()

    def test_the_same_image_in_two_projects_is_allowed(self, session):
        add_project(session, "p", items=1)
        other = Project(name="other", task_type=TaskType.detection)
        session.add(Item(project=other, sha256="p-0".ljust(64, "0"), media_path="p/0.png", width=8, height=8))
        session.flush()
        assert session.scalar(select(func.count()).select_from(Item)) == 2


ENUM_COLUMNS = [
    (table.name, column.name, column.type.enums)
    for table in Base.metadata.sorted_tables
    for column in table.columns
    if isinstance(column.type, Enum)
]
# The enum columns that `add_project` fills, so a plain-SQL UPDATE has rows to hit.
FILLED_ENUM_COLUMNS = [
    ("projects", "task_type"),
    ("users", "role"),
    ("items", "split"),
    ("training_jobs", "kind"),
    ("training_jobs", "status"),
    ("reviews", "verdict"),
    ("annotations", "source"),
]


class TestEnums:
    def test_unknown_value_is_refused_before_it_reaches_the_database(self, session):
        project = add_project(session, "p", items=1)
        session.add(Review(item=project.items[0], verdict="maybe"))
        with pytest.raises(StatementError, match="not among the defined enum values"):
            session.flush()

    @pytest.mark.parametrize(("table", "column"), FILLED_ENUM_COLUMNS)
    def test_unknown_value_written_with_plain_sql_is_refused_by_the_database(self, session, table, column):
        # Rows written outside the ORM (a script, a psql session) must not be able to store a value that every later
        # ORM read of the row would crash on.
        add_project(session, "p", items=1)
        session.commit()
        assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar() > 0
        with pytest.raises(IntegrityError):
            session.execute(text(f"UPDATE {table} SET {column} = 'not-a-member'"))

    def test_the_stored_task_types_are_the_values_of_the_task_type_enum(self):
        # The database layer does not import rise, so it keeps the values itself; here the two must agree.
        assert TASK_TYPES == tuple(task_type.value for task_type in TaskType)

    def test_every_enum_column_has_a_check_constraint_in_the_migrated_database(self, db_engine):
        # Walks the models, so an enum column added later is covered without editing this test.
        inspector = inspect(db_engine)
        missing = []
        for table, column, members in ENUM_COLUMNS:
            checks = [c["sqltext"] for c in inspector.get_check_constraints(table)]
            if not any(column in check and all(f"'{m}'" in check for m in members) for check in checks):
                missing.append(f"{table}.{column}")
        assert missing == []


HOSTILE_TEXT = "<script>alert('x')</script> \" ' \\ \u202e{{ }} ${x} %s; DROP TABLE items; --"
ANSWERS: list[Any] = [
    "cat",  # a single label
    {"cat": 0.7, "dog": 0.2, "bird": 0.1},  # a distribution (Emotion6-style)
    [{"label": "cat", "box": [1.5, 2.0, 30.25, 40.0]}, {"label": "dog", "box": [0, 0, 64, 64]}],  # detection
    [3.0, 4.5, 20.0, 21.0],  # one grounding box
    [],  # detection with nothing found
    "chat 😺 — ünïcødé 漢字",
    HOSTILE_TEXT,
    {HOSTILE_TEXT: 1.0},  # hostile text as a key too
]


class TestJsonAnswers:
    @pytest.mark.parametrize("answer", ANSWERS, ids=range(len(ANSWERS)))
    def test_answer_round_trips_unchanged(self, db_engine, answer):
        sessions = make_session_factory(db_engine)
        with sessions.begin() as session:
            item = add_project(session, "p", items=1).items[0]
            prediction = Prediction(item=item, model_name="tiny", raw_text=str(answer), answer=answer)
            review = Review(item=item, prediction=prediction, verdict=Verdict.correct, corrected_answer=answer)
            session.add(review)
            session.flush()
            session.add(Annotation(item=item, answer=answer, source=AnnotationSource.correct, review_id=review.id))
            session.flush()
            ids = prediction.id, review.id

        with sessions() as session:
            prediction, review = session.get(Prediction, ids[0]), session.get(Review, ids[1])
            assert prediction.answer == answer
            assert prediction.raw_text == str(answer)
            assert review.corrected_answer == answer
            assert session.scalar(select(Annotation.answer).where(Annotation.review_id == review.id)) == answer

    def test_nul_characters_are_stored_on_every_backend(self, session):
        # PostgreSQL text cannot hold NUL at all; a completion that contains one must still be stored (as U+FFFD),
        # and inside a JSON answer it survives as the escape \u0000.
        item = add_project(session, "p", items=1).items[0]
        prediction = Prediction(item=item, model_name="tiny", raw_text="a\x00b", cot="c\x00d", answer="e\x00f")
        session.add(prediction)
        session.commit()
        session.expire_all()

        assert (prediction.raw_text, prediction.cot, prediction.answer) == ("a\ufffdb", "c\ufffdd", "e\x00f")

    def test_missing_answer_is_sql_null_so_queries_for_it_find_it(self, session):
        # An unparseable completion stores answer=None; the queue asks the database for exactly those rows.
        item = add_project(session, "p", items=1).items[0]
        session.add(Prediction(item=item, model_name="tiny", raw_text="gibberish", answer=None))
        session.flush()

        missing = session.scalars(select(Prediction.raw_text).where(Prediction.answer.is_(None))).all()

        assert missing == ["gibberish"]

    def test_annotation_without_an_answer_is_refused(self, session):
        item = add_project(session, "p", items=1).items[0]
        session.add(Annotation(item=item, answer=None, source=AnnotationSource.imported))
        with pytest.raises(IntegrityError):
            session.flush()

    def test_project_labels_cannot_be_set_to_none(self, session):
        project = add_project(session, "p", items=1)
        project.labels = None
        with pytest.raises(IntegrityError):
            session.flush()


class TestReviewQueueAnswerReader:
    def test_a_session_without_the_answer_reader_refuses_to_fill_the_queue(self, db_engine):
        with make_session_factory(db_engine).begin() as session:
            item = add_project(session, "p", items=1).items[0]
            session.add(Prediction(item=item, model_name="tiny", raw_text="circle", answer="circle"))
            session.flush()
            with pytest.raises(AnswerReaderMissingError):
                sync_review_queue(session=session)

    def test_the_queue_files_a_prediction_under_the_labels_the_reader_names(self, db_engine):
        sessions = make_session_factory(db_engine, answer_labels=answer_labels)
        with sessions.begin() as session:
            item = add_project(session, "p", items=1).items[0]
            answer = [{"label": "square", "box": [0, 0, 4, 4]}, {"label": "circle", "box": [1, 1, 5, 5]}]
            session.add(Prediction(item=item, model_name="tiny", raw_text="boxes", answer=answer))
            session.flush()
            sync_review_queue(session=session)  # the newest prediction of the item wins
            entry = session.get(ReviewQueueEntry, item.id)
            assert entry is not None and entry.answer_labels == encode_labels(["circle", "square"])


class TestSqliteConnection:
    def test_every_connection_uses_wal_and_enforces_foreign_keys(self, sqlite_url):
        engine = make_engine(sqlite_url)
        try:
            with engine.connect() as first, engine.connect() as second:
                for connection in (first, second):
                    assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                    assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
                    assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        finally:
            engine.dispose()
