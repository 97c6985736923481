"""The one way the sidecar side builds a Celery client: JSON only, tasks sent by name."""

from __future__ import annotations

from celery import Celery


def celery_client(
    name: str, broker_url: str, result_backend: str | None = None, timeout_s: float = 2.0
) -> Celery:
    """A publishing client. Without ``result_backend`` it stores nothing: the sidecar reads
    results itself with redis.asyncio (see celery_backend). Its broker connections give up
    after ``timeout_s`` and are health-checked, so a dead Redis costs a search milliseconds,
    not kombu's default seconds, and a restarted one is reconnected to at once."""
    app = Celery(name, broker=broker_url, backend=result_backend)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_timeout=timeout_s,
        broker_transport_options={
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "socket_keepalive": True,
            "health_check_interval": 5,
        },
    )
    return app
