"""A throwaway redis-server on loopback (Debian's package)."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from sidecar.settings import Settings
from sidecar.testbed.errors import RedisNotInstalledError, ServiceStartError
from sidecar.testbed.ports import LOOPBACK, pick_port
from sidecar.testbed.process import ManagedProcess


@dataclass
class RunningRedis:
    url: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def start_redis(
    settings: Settings, *, port: int | None = None, start_timeout_s: float = 30.0
) -> RunningRedis:
    """Start redis-server with no persistence on a free (or the given) loopback port."""
    binary = shutil.which(settings.testbed.redis_server)
    if binary is None:
        raise RedisNotInstalledError(
            f"{settings.testbed.redis_server} was not found. Install Debian's package: "
            "`apt-get install redis-server` (`make setup` does this)."
        )
    port = pick_port(port, "redis-server")
    scratch = Path(tempfile.mkdtemp(prefix="rerank-testbed-redis-"))
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(scratch),
        "--protected-mode",
        "yes",
    ]
    process = ManagedProcess.spawn(
        "redis", argv, log_path=scratch / "redis.log", scratch_dir=scratch
    )
    running = RunningRedis(f"redis://{LOOPBACK}:{port}/0", process)
    deadline = time.monotonic() + start_timeout_s
    client = redis.Redis.from_url(running.url, socket_timeout=1)
    try:
        while True:
            try:
                if client.ping():
                    return running
            except redis.RedisError:
                pass
            if not process.is_running() or time.monotonic() >= deadline:
                running.stop()
                raise ServiceStartError(
                    f"redis-server did not answer on port {port}. Its log ends:\n"
                    f"{process.log_tail()}"
                )
            time.sleep(0.1)
    finally:
        client.close()
