"""The review service's vocabulary: the task a reviewer sees, the queue filter, and the errors the UI shows.

Kept apart from the use cases in `app.services.review`, which re-exports all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.errors import AppError
from db.models import Verdict

__all__ = [
    "AlreadyReviewedError",
    "DatabaseBusyError",
    "InvalidAnswerError",
    "InvalidVerdictError",
    "ItemNotFoundError",
    "LeaseConflictError",
    "QueueFilter",
    "QueueOptions",
    "ReviewError",
    "ReviewTask",
]


class ReviewError(AppError, ValueError):
    """A review action cannot be done as asked; the message is meant for the reviewer."""


class DatabaseBusyError(ReviewError):
    """The database stayed locked by other writers past the lock timeout; nothing was saved, and trying again works."""


class ItemNotFoundError(ReviewError):
    pass


class LeaseConflictError(ReviewError):
    """Another reviewer holds the item."""


class AlreadyReviewedError(ReviewError):
    """The item already has a verdict and was not leased for a second look."""


class InvalidVerdictError(ReviewError):
    """The verdict does not fit the item (e.g. accepting an answer the model never gave)."""


class InvalidAnswerError(ReviewError):
    """A corrected answer does not fit the project's task, labels or image."""


@dataclass(frozen=True)
class QueueFilter:
    """Which items the queue offers. `verdict=None` is the unreviewed items; a verdict gives the items whose
    latest verdict it is, for a second look, oldest verdict first (then `order` does not apply)."""

    label: str | None = None
    verdict: str | None = None
    model_name: str | None = None
    order: Literal["confidence", "oldest"] = "confidence"


@dataclass
class ReviewTask:
    """One leased item with the prediction to review, as plain values for the UI."""

    item_id: int
    project_id: int
    task_type: str
    labels: list[str]
    image_path: str
    width: int
    height: int
    query: str | None
    prediction_id: int | None
    model_name: str
    raw_text: str
    cot: str | None
    answer: Any
    parse_error: str | None
    score: float | None
    lease_expires_at: datetime | None
    position: int  # this item's number in the project's progress: items with a verdict, plus one
    remaining: int  # other items left in this queue (same filter)
    distribution: bool = False  # classification answers are probability distributions over `labels`
    verdict: str | None = None  # the item's current verdict when it is up for a second look
    split: str = "train"
    # The items leased ahead for this reviewer, in queue order (`lookahead=N`): the next one is shown the moment
    # this one gets its verdict, while the server records it. Their own `upcoming` are empty.
    upcoming: tuple[ReviewTask, ...] = ()


@dataclass(frozen=True)
class QueueOptions:
    """Choices for the queue filters of a project."""

    labels: list[str]
    model_names: list[str]
    verdicts: list[str] = field(default_factory=lambda: [v.value for v in Verdict])
