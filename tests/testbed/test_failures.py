"""Test-bed failures say what went wrong and what to do."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.settings import Settings
from sidecar.testbed import (
    ArtifactUnavailableError,
    EngineStartError,
    JavaNotFoundError,
    PortInUseError,
    RedisNotInstalledError,
    engine_specs,
    start_engine,
    start_redis,
)
from sidecar.testbed.engines import prepare


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _with(settings: Settings, **testbed: object) -> Settings:
    return settings.model_copy(update={"testbed": settings.testbed.model_copy(update=testbed)})


def test_missing_java_says_how_to_get_one(settings: Settings, tmp_path: Path) -> None:
    broken = _with(settings, java_home=tmp_path / "no-such-jdk")
    with pytest.raises(JavaNotFoundError) as info:
        start_engine(engine_specs(broken)["opensearch"], broken)
    message = str(info.value)
    assert "no-such-jdk" in message
    assert "apt-get install" in message and "RERANK_TESTBED__JAVA_HOME" in message


def test_engine_port_in_use_is_named(settings: Settings, busy_port: int) -> None:
    with pytest.raises(PortInUseError) as info:
        start_engine(engine_specs(settings)["opensearch"], settings, http_port=busy_port)
    assert f"port {busy_port}" in str(info.value)
    assert "testbed down" in str(info.value)


def test_redis_port_in_use_is_named(settings: Settings, busy_port: int) -> None:
    with pytest.raises(PortInUseError, match=f"redis-server: port {busy_port}"):
        start_redis(settings, port=busy_port)


def test_missing_redis_server_says_which_package(settings: Settings) -> None:
    broken = _with(settings, redis_server="redis-server-that-is-not-installed")
    with pytest.raises(RedisNotInstalledError, match="apt-get install redis-server"):
        start_redis(broken)


def test_unserved_artifact_names_coordinate_and_where_to_look(settings: Settings) -> None:
    broken = _with(settings, opensearch_version="2.0.99")
    with pytest.raises(ArtifactUnavailableError) as info:
        prepare(engine_specs(broken)["opensearch"], broken)
    message = str(info.value)
    assert "org.opensearch.distribution.integ-test-zip:opensearch:2.0.99:zip" in message
    assert "maven-metadata.xml" in message
    assert "RERANK_TESTBED__OPENSEARCH_VERSION" in message


def test_unserved_elasticsearch9_says_that_9x_is_served_by_exact_version(
    settings: Settings, tmp_path: Path
) -> None:
    # 9.x zips are served by exact version although maven-metadata.xml lists none. An empty
    # local repository serves nothing, without a round trip to Maven Central.
    broken = _with(settings, elasticsearch9_version="9.0.99", maven_repository=tmp_path.as_uri())
    with pytest.raises(ArtifactUnavailableError) as info:
        prepare(engine_specs(broken)["elasticsearch9"], broken)
    message = str(info.value)
    assert "org.elasticsearch.distribution.integ-test-zip:elasticsearch:9.0.99:zip" in message
    assert "lists none: 9.2.4" in message
    assert "RERANK_TESTBED__ELASTICSEARCH9_VERSION" in message


def test_engine_not_green_in_time_fails_and_leaves_nothing_running(settings: Settings) -> None:
    spec = engine_specs(settings)["opensearch"]
    prepare(spec, settings)  # download outside the timed start
    started = time.monotonic()
    with pytest.raises(EngineStartError) as info:
        start_engine(spec, settings, start_timeout_s=0.5)
    assert time.monotonic() - started < 60
    message = str(info.value)
    assert "did not turn green within 0.5s" in message
    assert "RERANK_TESTBED__START_TIMEOUT_S" in message
