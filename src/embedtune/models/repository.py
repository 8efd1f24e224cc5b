"""Every query of the model registry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from embedtune.core.db import utcnow
from embedtune.models.tables import EmbeddingModel


def get(session: Session, model_id: str) -> EmbeddingModel | None:
    return session.get(EmbeddingModel, model_id)


def list_newest_first(session: Session, offset: int, limit: int) -> list[EmbeddingModel]:
    query = (
        select(EmbeddingModel)
        .order_by(EmbeddingModel.created_at.desc(), EmbeddingModel.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(session.scalars(query))


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(EmbeddingModel)) or 0)


def insert(session: Session, model: EmbeddingModel) -> None:
    """Flushes, so a duplicate id raises ``IntegrityError`` here."""
    session.add(model)
    session.flush()


def upsert_path(session: Session, model_id: str, name: str, path: str, plugin: str) -> None:
    """Registers a model, or points an existing registration at ``path`` (a new install).

    One ``INSERT … ON CONFLICT DO UPDATE``: processes starting together cannot both insert.
    """
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    statement = insert(EmbeddingModel).values(
        id=model_id, name=name, path=path, plugin=plugin, created_at=utcnow()
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[EmbeddingModel.id], set_={"path": statement.excluded.path}
        )
    )


def register_trained(
    session: Session,
    model_id: str,
    name: str,
    path: str,
    plugin: str,
    parent_id: str,
    task_id: str,
    metrics: dict[str, Any],
) -> EmbeddingModel:
    model = EmbeddingModel(
        id=model_id,
        name=name,
        path=path,
        plugin=plugin,
        parent_id=parent_id,
        task_id=task_id,
        metrics=metrics,
    )
    insert(session, model)
    return model
