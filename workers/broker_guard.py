"""A guard against a kombu bug that stops a worker when Redis goes away while it runs a job.

When the broker connection drops, Celery closes the consumer's channel, and closing it tries to
put the jobs still running back on their queues (``restore_unacked``) through a new Redis
client. kombu 5.7 builds that client from the channel's connection, which is already gone:
``AttributeError: 'NoneType' object has no attribute 'hostname'``. That is not one of the
errors Celery expects while closing, so the worker reports an "Unrecoverable error" and shuts
down, where it should reconnect as soon as Redis is back: one Redis restart under load stopped
every busy worker (tests/sidecar/test_dispatch_load.py saw it on about one run in four).

The guard turns that AttributeError into the connection error it stands for, which Celery
ignores while closing and answers by reconnecting. The jobs are not lost: they stay in Redis's
unacknowledged set and are handed out again after the visibility timeout, as for a worker that
died (or, if Redis restarted empty, they were gone with it anyway).
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class GuardedQoS(kombu_redis.QoS):
    def restore_unacked(self, client: object = None) -> None:
        try:
            super().restore_unacked(client)  # type: ignore[no-untyped-call]
        except AttributeError as exc:
            raise RedisConnectionError(
                "the broker connection is gone: unacknowledged jobs come back after the "
                "visibility timeout"
            ) from exc


def install() -> None:
    """Use the guarded QoS on every Redis channel of this process (idempotent)."""
    kombu_redis.Channel.QoS = GuardedQoS


__all__ = ["GuardedQoS", "install"]
