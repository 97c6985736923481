"""The Celery application shared by the sidecar (to publish) and the workers (to consume).

Built from plain arguments rather than the settings model, so this module stays free of the
sidecar's code; the CLI builds the settings once and passes the values in.
"""

from __future__ import annotations

from celery import Celery

DEFAULT_QUEUE = "rerank.default"


def create_celery_app(broker_url: str, result_backend: str | None = None) -> Celery:
    """A Celery app on a Redis broker with JSON-only messages and results in Redis."""
    app = Celery("rerank", broker=broker_url, backend=result_backend or broker_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=DEFAULT_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        include=["workers.tasks"],
    )
    return app
