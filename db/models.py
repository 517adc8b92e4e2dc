"""Typed SQLAlchemy 2.0 models.

Answers (labels, distributions, boxes) are stored as JSON in original-image pixels; the exact shapes are defined by
`rise.tasks` and validated by the services before they reach these tables.

Reviews are append-only: an undo is recorded as `undone_at` on the review it cancels, never as a deletion, so the
history of every verdict survives.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

intpk = Annotated[int, mapped_column(primary_key=True)]
str_name = Annotated[str, mapped_column(String(255))]
JsonDict = dict[str, Any]
JsonList = list[Any]


def utcnow() -> datetime:
    """Naive UTC: SQLite drops time zones on read, so every timestamp is stored and compared as naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


created_ts = Annotated[datetime, mapped_column(DateTime(), default=utcnow)]


# Named constraints let Alembic's SQLite batch mode drop and recreate them by name in later migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# none_as_null: Python None becomes SQL NULL, not the JSON text 'null'. Otherwise `answer IS NULL` misses predictions
# without an answer, and NOT NULL JSON columns silently accept None.
Json = JSON(none_as_null=True)


# NUL and the halves of surrogate pairs (a lone one decodes from JSON's "\ud800" escape) cannot be stored as text:
# PostgreSQL refuses NUL and SQLite's driver cannot encode a surrogate to UTF-8, and either fails the whole write.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """`value` with NUL and lone surrogates replaced by U+FFFD, the one form both SQLite and PostgreSQL store.

    >>> storable_text("a\x00b\ud800c")
    'a\ufffdb\ufffdc'
    """
    return _UNSTORABLE.sub("\ufffd", value)


class StorableText(TypeDecorator[str]):
    """TEXT for text from outside (model completions, comments, imported reasoning): stored through
    `storable_text`, the same on both databases, so no character in it can fail an annotation run or an import."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return storable_text(value) if isinstance(value, str) else value


class StorableString(TypeDecorator[str]):
    """VARCHAR(n) for names from outside (file names, imported authors and model names), stored like
    `StorableText`. Its callers keep the text within the length, which PostgreSQL enforces."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return storable_text(value) if isinstance(value, str) else value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        JsonDict: Json,
        JsonList: Json,
        datetime: DateTime(),
    }


def _enum(enum_cls: type[enum.Enum]) -> Enum:
    # Store the value ("accept"), not the member name ("ACCEPT"), and use a VARCHAR + CHECK rather than a native
    # PostgreSQL ENUM so adding a member is an ordinary batch migration on both backends (drop and recreate the
    # CHECK named ck_<table>_<enum name>). The CHECK keeps rows written outside the ORM from holding a value that
    # every later ORM read of the row would fail on.
    return Enum(
        enum_cls,
        values_callable=lambda members: [m.value for m in members],
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        length=32,
        name=enum_cls.__name__.lower(),
    )


def _choice(values: tuple[str, ...], *, name: str) -> Enum:
    # `_enum`'s column for values this layer keeps as plain strings: the same VARCHAR + CHECK named ck_<table>_<name>.
    return Enum(*values, native_enum=False, create_constraint=True, validate_strings=True, length=32, name=name)


# A project's task type, stored as its value. `rise.tasks.TaskType` is the enum the rest of the code works with; the
# database layer does not import `rise`, so it keeps the values here (tests/test_models.py checks that they agree).
TASK_TYPES = ("classification", "detection", "grounding")


class Split(enum.StrEnum):
    train = "train"
    eval = "eval"


class Verdict(enum.StrEnum):
    accept = "accept"
    correct = "correct"
    reject = "reject"


class AnnotationSource(enum.StrEnum):
    imported = "import"
    accept = "accept"
    correct = "correct"


class Role(enum.StrEnum):
    reviewer = "reviewer"
    admin = "admin"


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class JobKind(enum.StrEnum):
    train = "train"
    annotate = "annotate"


class User(Base):
    __tablename__ = "users"

    id: Mapped[intpk]
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role), default=Role.reviewer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Raised by every change of the password, role or active flag (`db.crud.users.update_user`); a session signed
    # in under another number has ended.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[created_ts]

    reviews: Mapped[list[Review]] = relationship(back_populates="reviewer")


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(255), unique=True)
    task_type: Mapped[str] = mapped_column(_choice(TASK_TYPES, name="tasktype"))
    # Ordered label set. Classification: the classes; detection/grounding: the box labels.
    labels: Mapped[JsonList] = mapped_column(default=list)
    # {"synonym": "canonical label"} used when parsing model answers.
    label_synonyms: Mapped[JsonDict] = mapped_column(default=dict)
    # {"annotate": "...", "reasoning": "...", "reconstruct": "..."} overriding rise.prompts templates.
    prompt_overrides: Mapped[JsonDict] = mapped_column(default=dict)
    # Classification answers as a probability distribution over `labels` (Emotion6-style) instead of one label.
    distribution: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(StorableText, default="")
    # Fraction of imported items held out for evaluation; they are never trained on.
    eval_fraction: Mapped[float] = mapped_column(Float, default=0.1)
    default_model: Mapped[str | None] = mapped_column(String(1024))
    # Periodic retraining policy: retrain after this many new verdicts (None: off), and/or every N hours.
    retrain_every_verdicts: Mapped[int | None] = mapped_column(Integer)
    retrain_every_hours: Mapped[float | None] = mapped_column(Float)
    # Pipeline settings ("section.field=value") every retraining of the project starts from; a request's own
    # settings go on top.
    retrain_settings: Mapped[JsonList] = mapped_column(default=list, server_default="[]")
    created_at: Mapped[created_ts]

    items: Mapped[list[Item]] = relationship(back_populates="project", cascade="all, delete-orphan")
    # Without a delete cascade the ORM would null project_id on a deleted project's versions, turning them into
    # project-less (global) models; passive_deletes leaves unloaded ones to the database's ON DELETE CASCADE.
    model_versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="project", cascade="all", passive_deletes=True
    )


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "sha256", name="uq_items_project_sha256"),
        Index("ix_items_project_split", "project_id", "split"),
    )

    id: Mapped[intpk]
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    # Path relative to the media folder: <sha[:2]>/<sha>.<ext>; content-addressed, so shared across projects.
    media_path: Mapped[str] = mapped_column(String(1024))
    original_name: Mapped[str] = mapped_column(StorableString(1024), default="")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    split: Mapped[Split] = mapped_column(_enum(Split), default=Split.train)
    # Grounding: the free-text referring query ("the object that differs from the others").
    query: Mapped[str | None] = mapped_column(StorableText)
    meta: Mapped[JsonDict] = mapped_column(default=dict)
    # Review queue lease: one reviewer holds an item until the lease expires.
    # Indexed: "the item this reviewer holds" is looked up on every queue request.
    leased_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[created_ts]

    project: Mapped[Project] = relationship(back_populates="items")
    predictions: Mapped[list[Prediction]] = relationship(back_populates="item", cascade="all, delete-orphan")
    reviews: Mapped[list[Review]] = relationship(back_populates="item", cascade="all, delete-orphan")
    annotations: Mapped[list[Annotation]] = relationship(back_populates="item", cascade="all, delete-orphan")


class ModelVersion(Base):
    __tablename__ = "model_versions"
    # At most one serving version per project, enforced by the database whatever races (migration 0004).
    __table_args__ = (
        Index(
            "uq_model_versions_serving",
            "project_id",
            unique=True,
            sqlite_where=text("is_serving"),
            postgresql_where=text("is_serving"),
        ),
    )

    id: Mapped[intpk]
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # Hub id or local path of the base weights, e.g. "Qwen/Qwen2-VL-2B-Instruct" or "assets/demo-model".
    base_model: Mapped[str] = mapped_column(String(1024))
    adapter_path: Mapped[str | None] = mapped_column(String(1024))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("training_jobs.id", ondelete="SET NULL"))
    data_snapshot: Mapped[str | None] = mapped_column(String(1024))
    metrics: Mapped[JsonDict] = mapped_column(default=dict)
    is_serving: Mapped[bool] = mapped_column(Boolean, default=False)
    promoted_at: Mapped[datetime | None]
    created_at: Mapped[created_ts]

    project: Mapped[Project | None] = relationship(back_populates="model_versions")


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_item_model", "item_id", "model_version_id"),)

    id: Mapped[intpk]
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    # Free-form name kept even when no ModelVersion row exists (imported Label Studio predictions).
    model_name: Mapped[str] = mapped_column(StorableString(1024), default="")
    raw_text: Mapped[str] = mapped_column(StorableText, default="")
    cot: Mapped[str | None] = mapped_column(StorableText)
    answer: Mapped[Any | None] = mapped_column(Json)
    parse_error: Mapped[str | None] = mapped_column(StorableText)
    # Confidence in [0, 1] (agreement among sampled answers); the review queue shows the lowest first.
    score: Mapped[float | None] = mapped_column(Float, index=True)
    created_at: Mapped[created_ts]

    item: Mapped[Item] = relationship(back_populates="predictions")
    model_version: Mapped[ModelVersion | None] = relationship()


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_item_created", "item_id", "created_at"),)

    id: Mapped[intpk]
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id", ondelete="SET NULL"))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    verdict: Mapped[Verdict] = mapped_column(_enum(Verdict))
    corrected_answer: Mapped[Any | None] = mapped_column(Json)
    reasoning_wrong: Mapped[bool] = mapped_column(Boolean, default=False)
    # The reviewer's own reasoning for a correction: the CoT of the trusted annotation it makes, so SFT data.
    corrected_cot: Mapped[str | None] = mapped_column(StorableText)
    comment: Mapped[str] = mapped_column(StorableText, default="")
    time_spent_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[created_ts]
    # Set by "Undo last"; the row stays for the audit trail.
    undone_at: Mapped[datetime | None]

    item: Mapped[Item] = relationship(back_populates="reviews")
    prediction: Mapped[Prediction | None] = relationship()
    reviewer: Mapped[User | None] = relationship(back_populates="reviews")


class Annotation(Base):
    """A trusted answer for an item: imported ground truth, an accepted prediction or a reviewer's correction."""

    __tablename__ = "annotations"

    id: Mapped[intpk]
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    answer: Mapped[Any] = mapped_column(Json)
    # The accepted CoT (unless the reviewer flagged it as wrong) or the reasoning a reviewer wrote with a correction:
    # SFT data.
    cot: Mapped[str | None] = mapped_column(StorableText)
    source: Mapped[AnnotationSource] = mapped_column(_enum(AnnotationSource))
    review_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Free-form author for imported annotations ("alice@example.com" from a Label Studio export).
    created_by_name: Mapped[str] = mapped_column(StorableString(255), default="")
    created_at: Mapped[created_ts]

    item: Mapped[Item] = relationship(back_populates="annotations")


class ReviewQueueEntry(Base):
    """The review queue: one row per item that has a prediction (or a review), kept in step by `db.crud.reviews`.

    Copied from `predictions` (project, newest prediction, its score and labels) and `reviews` (the latest verdict
    that is not undone), so "the next unreviewed item of a project by lowest confidence" is one index range scan
    at any size. Answering it from `predictions` and `reviews` directly would sort or skip every reviewed item on
    each request, because no single table holds both the project and the score.
    """

    __tablename__ = "review_queue"
    __table_args__ = (
        # Partial indexes over the unreviewed rows: PostgreSQL only reads an index in order past columns fixed by
        # `=`, so (project_id, verdict IS NULL, score) would sort every unreviewed row instead.
        Index(
            "ix_review_queue_open_confidence",
            "project_id",
            "score",
            "item_id",
            sqlite_where=text("verdict IS NULL"),
            postgresql_where=text("verdict IS NULL"),
        ),
        Index(
            "ix_review_queue_open_oldest",
            "project_id",
            "item_id",
            sqlite_where=text("verdict IS NULL"),
            postgresql_where=text("verdict IS NULL"),
        ),
        Index("ix_review_queue_verdict_at", "project_id", "verdict", "verdict_at"),
    )

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # The item's newest prediction; its id is also the high-water mark of the sync from `predictions`.
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id", ondelete="SET NULL"), index=True)
    model_name: Mapped[str] = mapped_column(String(1024), default="")
    # The prediction's confidence; a prediction without one sorts as 0 (least confident, so it is seen first).
    score: Mapped[float] = mapped_column(Float, default=0.0)
    # The labels the prediction names, each between two separators, so a label filter is a LIKE.
    answer_labels: Mapped[str] = mapped_column(Text, default="")
    # The latest verdict that is not undone (NULL: not reviewed), and its review.
    verdict: Mapped[Verdict | None] = mapped_column(_enum(Verdict))
    review_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id", ondelete="SET NULL"))
    verdict_at: Mapped[datetime | None]


class ReviewQueueCount(Base):
    """Per project: queue rows and rows with a verdict, kept exact by `db.crud.review_queue` in the same
    transactions that change them, so a review screen's "12 of 80,000" costs one row read instead of two counts
    over the whole queue."""

    __tablename__ = "review_queue_counts"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    reviewed: Mapped[int] = mapped_column(Integer, default=0)


class ReviewSkip(Base):
    """A reviewer skipped an item: their queue offers it again only after every item they have not skipped."""

    __tablename__ = "review_skips"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    skipped_at: Mapped[created_ts]


ACTIVE_TRAIN_JOB_SQL = "kind = 'train' AND status IN ('queued', 'running')"


class TrainingJob(Base):
    """A queued unit of GPU/CPU work (a retraining run or a batch annotation run) claimed by `rise worker`."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        Index("ix_training_jobs_status_created", "status", "created_at"),
        # At most one queued or running training job per project, enforced by the database (migration 0004).
        Index(
            "uq_training_jobs_active_train",
            "project_id",
            unique=True,
            sqlite_where=text(ACTIVE_TRAIN_JOB_SQL),
            postgresql_where=text(ACTIVE_TRAIN_JOB_SQL),
        ),
    )

    id: Mapped[intpk]
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind), default=JobKind.train)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.queued)
    config: Mapped[JsonDict] = mapped_column(default=dict)
    stage: Mapped[str] = mapped_column(String(64), default="")
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    # Streamed training curves: {"reward": [[step, value], ...], "loss": [...]}.
    metrics: Mapped[JsonDict] = mapped_column(default=dict)
    log: Mapped[str] = mapped_column(StorableText, default="")
    error: Mapped[str | None] = mapped_column(StorableText)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_ts]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
