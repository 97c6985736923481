"""Real servers on loopback for development and tests: engines, Redis, a Celery worker."""

from sidecar.testbed.bed import Service, down, up
from sidecar.testbed.celery_worker import RunningWorker, start_worker
from sidecar.testbed.engines import (
    EngineSpec,
    RunningEngine,
    engine_specs,
    runnable_engines,
    start_engine,
)
from sidecar.testbed.errors import (
    ArtifactUnavailableError,
    EngineStartError,
    JavaNotFoundError,
    PortInUseError,
    RedisNotInstalledError,
    ServiceStartError,
    TestbedError,
)
from sidecar.testbed.redis_server import RunningRedis, start_redis

__all__ = [
    "ArtifactUnavailableError",
    "EngineSpec",
    "EngineStartError",
    "JavaNotFoundError",
    "PortInUseError",
    "RedisNotInstalledError",
    "RunningEngine",
    "RunningRedis",
    "RunningWorker",
    "Service",
    "ServiceStartError",
    "TestbedError",
    "down",
    "engine_specs",
    "runnable_engines",
    "start_engine",
    "start_redis",
    "start_worker",
    "up",
]
