"""The one way the sidecar side builds a Celery client: JSON only, tasks sent by name."""

from __future__ import annotations

from celery import Celery


def celery_client(name: str, broker_url: str, result_backend: str | None = None) -> Celery:
    """A publishing client. Without ``result_backend`` it stores nothing: the sidecar reads
    results itself with redis.asyncio (see celery_backend)."""
    app = Celery(name, broker=broker_url, backend=result_backend)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    return app
