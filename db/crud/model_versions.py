"""Model versions of a project: registering one per finished training job, listing them, and which one serves.

At most one version of a project serves at a time (a partial unique index, migration 0004). `set_serving` clears
the old one and marks the new one in the caller's transaction, so readers see either the old or the new serving
version, never none or two.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import ModelVersion, Project, utcnow


def get_model_version(*, session: Session, version_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def list_model_versions(*, session: Session, project_id: int) -> list[ModelVersion]:
    """Newest first."""
    stmt = select(ModelVersion).where(ModelVersion.project_id == project_id).order_by(ModelVersion.id.desc())
    return list(session.scalars(stmt))


def serving_version(*, session: Session, project_id: int) -> ModelVersion | None:
    stmt = select(ModelVersion).where(ModelVersion.project_id == project_id, ModelVersion.is_serving.is_(True))
    return session.scalars(stmt.limit(1)).first()


def find_version_by_name(*, session: Session, project_id: int, name: str) -> ModelVersion | None:
    stmt = (
        select(ModelVersion)
        .where(ModelVersion.project_id == project_id, ModelVersion.name == name)
        .order_by(ModelVersion.id.desc())
    )
    return session.scalars(stmt.limit(1)).first()


def base_version(*, session: Session, project_id: int, base_model: str) -> ModelVersion | None:
    """The version standing for the untrained base model (no adapter), if one was registered."""
    stmt = select(ModelVersion).where(
        ModelVersion.project_id == project_id,
        ModelVersion.base_model == base_model,
        ModelVersion.adapter_path.is_(None),
        ModelVersion.job_id.is_(None),
    )
    return session.scalars(stmt.order_by(ModelVersion.id).limit(1)).first()


def create_model_version(
    *,
    session: Session,
    project_id: int,
    name: str,
    base_model: str,
    adapter_path: str | None = None,
    parent_id: int | None = None,
    job_id: int | None = None,
    data_snapshot: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelVersion:
    version = ModelVersion(
        project_id=project_id,
        name=name,
        base_model=base_model,
        adapter_path=adapter_path,
        parent_id=parent_id,
        job_id=job_id,
        data_snapshot=data_snapshot,
        metrics=dict(metrics or {}),
        is_serving=False,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    return version


def lock_project(*, session: Session, project_id: int) -> Project | None:
    """Lock the project row until the transaction ends (PostgreSQL), so two promotions of one project run one after
    the other; SQLite's single writer serialises them already."""
    stmt = select(Project).where(Project.id == project_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def set_serving(*, session: Session, version: ModelVersion) -> ModelVersion:
    """Make `version` its project's serving version (and no other); call `lock_project` first in the same
    transaction."""
    now = utcnow()
    session.execute(
        update(ModelVersion)
        .where(
            ModelVersion.project_id == version.project_id,
            ModelVersion.is_serving.is_(True),
            ModelVersion.id != version.id,
        )
        .values(is_serving=False)
    )
    # The old row must be unmarked in the database before the new one is marked, or the unique index objects.
    session.flush()
    session.expire_all()
    version = session.get(ModelVersion, version.id)
    version.is_serving = True
    version.promoted_at = now
    session.flush()
    return version


def update_metrics(*, session: Session, version: ModelVersion, metrics: dict[str, Any]) -> ModelVersion:
    version.metrics = {**version.metrics, **metrics}
    session.flush()
    return version
