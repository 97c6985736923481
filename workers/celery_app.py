"""The Celery application shared by the sidecar (to publish) and the workers (to consume).

Built from plain arguments rather than the settings model, so this module stays free of the
sidecar's code; the CLI builds the settings once and passes the values in.
"""

from __future__ import annotations

from celery import Celery

from workers import broker_guard

DEFAULT_QUEUE = "rerank.default"


def create_celery_app(
    broker_url: str,
    result_backend: str | None = None,
    *,
    soft_time_limit_s: float = 60.0,
    time_limit_s: float = 90.0,
    visibility_timeout_s: float = 120.0,
    redelivery_check_s: float = 10.0,
) -> Celery:
    """A Celery app on a Redis broker with JSON-only messages and results in Redis.

    Scoring is idempotent, so a job is acknowledged only after it ran (acks_late) and goes back
    to the queue when its worker dies (reject_on_worker_lost; Redis redelivers it after the
    visibility timeout). Each process takes one job at a time from the broker (prefetch 1).
    """
    broker_guard.install()  # a broker restart must not stop a busy worker (see the module)
    app = Celery("rerank", broker=broker_url, backend=result_backend or broker_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=DEFAULT_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_soft_time_limit=soft_time_limit_s,
        task_time_limit=time_limit_s,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s,
            # Look for jobs of dead workers every redelivery_check_s (kombu's default is ~100 s).
            "unacked_restore_interval": redelivery_check_s,
            "unacked_restore_throttle": 1,
            # Poll queues in the order the worker lists them: interactive before bulk.
            "queue_order_strategy": "priority",
        },
        worker_hijack_root_logger=False,
        include=["workers.tasks"],
    )
    return app
