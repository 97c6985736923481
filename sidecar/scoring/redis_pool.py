"""The sidecar's Redis clients: a bounded pool that waits instead of failing, health checks,
keep-alive, short timeouts and a quick retry on a dead connection.

redis-py's defaults suit a long-lived worker, not a proxy under a burst: a pool of 100 that
raises "Too many connections" on the 101st concurrent command, and 10 retries with up to a
second of backoff each while Redis is down, so a search waits seconds to learn what one failed
connect already said. Here a command waits for a free connection (up to ``timeout_s``), a
connection that died while pooled (Redis restarted: the socket sits in CLOSE-WAIT) is found
by the health check or fails once and is replaced at once, and a down Redis fails in
milliseconds.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

HEALTH_CHECK_S = 5


def redis_client(url: str, *, max_connections: int = 64, timeout_s: float = 2.0) -> aioredis.Redis:
    """A client on ``url`` with its own bounded, self-healing pool."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_S,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.005), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool


__all__ = ["redis_client"]
