"""Test-bed errors. Each message says what went wrong and what to do about it.

TestbedError
 ├── JavaNotFoundError        no usable Java for an engine
 ├── PortInUseError           a configured port is taken
 ├── ArtifactUnavailableError Maven could not fetch an engine distribution or module jar
 ├── EngineStartError         an engine exited, or did not turn green in time
 ├── RedisNotInstalledError   no redis-server binary
 └── ServiceStartError        redis-server or the Celery worker did not come up
"""

from __future__ import annotations


class TestbedError(RuntimeError):
    """A test-bed server could not be provided; the message says what to do."""

    __test__ = False


class JavaNotFoundError(TestbedError):
    pass


class PortInUseError(TestbedError):
    pass


class ArtifactUnavailableError(TestbedError):
    pass


class EngineStartError(TestbedError):
    pass


class RedisNotInstalledError(TestbedError):
    pass


class ServiceStartError(TestbedError):
    pass
