"""The one typed settings model of rerank-sidecar.

Values come, highest priority first, from keyword arguments, ``RERANK_*`` environment variables
(nested with ``__``, e.g. ``RERANK_TESTBED__OPENSEARCH_VERSION=2.19.6``) and a YAML file named by
``RERANK_CONFIG`` or ``--config``. Settings are built once at start and passed down; nothing reads
them from a global.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


def default_cache_dir() -> Path:
    """Where downloads, unpacked engines and built models live: outside the repository."""
    return Path.home() / ".cache" / "rerank-sidecar"


class TestbedSettings(BaseModel):
    """Real servers for development and tests, all on loopback."""

    __test__ = False  # not a pytest test class, despite the name
    model_config = ConfigDict(extra="forbid")

    opensearch_version: str = "2.19.6"
    """OpenSearch 2.x integ-test distribution from Maven Central. Example: ``2.19.6``."""
    opensearch3_version: str = "3.6.0"
    """OpenSearch 3.x, started only when a Java 21+ is found. Example: ``3.6.0``."""
    elasticsearch_version: str = "8.19.21"
    """Elasticsearch 8.x integ-test distribution from Maven Central. Example: ``8.19.21``."""
    elasticsearch9_version: str | None = None
    """Elasticsearch 9.x needs Java 21+. Maven Central serves no 9.x integ-test zip as of
    2026-11, so this is unset; set it (e.g. ``9.2.0``) once one is published."""
    heap: str = "512m"
    """JVM heap of each engine, both -Xms and -Xmx. Example: ``512m``."""
    start_timeout_s: float = 180.0
    """How long an engine may take to turn green before the start fails. Example: ``180``."""
    java_home: Path | None = None
    """A JDK or JRE to run the engines with; unset means JAVA_HOME, then /usr/lib/jvm, then PATH."""
    maven_repository: str = "https://repo1.maven.org/maven2"
    """Remote Maven repository the engine distributions are fetched from."""
    engine_user: str = "rerank-testbed"
    """Engines refuse to run as root; when the test bed runs as root they run as this account,
    created on first use. Example: ``rerank-testbed``."""
    engines_dir: Path | None = None
    """Where unpacked engines live. Unset means ``<cache_dir>/dist``, or
    ``/var/cache/rerank-sidecar/engines`` when running as root, because the engine account cannot
    enter /root. Example: ``/srv/rerank-testbed/engines``."""
    redis_server: str = "redis-server"
    """The redis-server binary (Debian package ``redis-server``)."""
    worker_concurrency: int = Field(default=2, ge=1)
    """Threads of the test-bed Celery worker. Example: ``2``."""


class CelerySettings(BaseModel):
    """Celery client and worker settings shared by the sidecar and the workers."""

    model_config = ConfigDict(extra="forbid")

    broker_url: str = "redis://127.0.0.1:6379/0"
    """Redis broker. Example: ``redis://127.0.0.1:6379/0``."""
    result_backend: str | None = None
    """Where results go; unset means the broker's Redis."""


class Settings(BaseSettings):
    """All of rerank-sidecar's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="RERANK_",
        env_nested_delimiter="__",
        extra="forbid",
        yaml_file=None,
    )

    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Downloads, unpacked engines, built tiny models. Example: ``~/.cache/rerank-sidecar``."""
    testbed: TestbedSettings = Field(default_factory=TestbedSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)

    @field_validator("cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = settings_cls.model_config.get("yaml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment, an optional YAML file and explicit overrides."""
    if config_file is None:
        return Settings(**overrides)

    class _FromFile(Settings):
        model_config = SettingsConfigDict(yaml_file=config_file)

    return _FromFile(**overrides)
