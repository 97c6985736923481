"""Elasticsearch and OpenSearch nodes on loopback, from their integ-test distributions."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sidecar.settings import Settings
from sidecar.testbed.artifacts import Artifact, fetch, unpack
from sidecar.testbed.errors import EngineStartError, PortInUseError
from sidecar.testbed.java import find_java, has_java
from sidecar.testbed.modules import install_modules
from sidecar.testbed.ports import LOOPBACK, free_port, pick_port
from sidecar.testbed.process import ManagedProcess
from sidecar.testbed.users import engine_user, give_to

Flavor = Literal["opensearch", "elasticsearch"]


@dataclass(frozen=True)
class EngineSpec:
    """One engine the test bed can run: ``name`` is what `--engines` and the fixtures use."""

    name: str
    flavor: Flavor
    version: str
    min_java: int

    @property
    def version_setting(self) -> str:
        """The environment variable that sets this engine's version."""
        return f"RERANK_TESTBED__{self.name.upper()}_VERSION"

    @property
    def distribution(self) -> Artifact:
        if self.flavor == "opensearch":
            return Artifact(
                "org.opensearch.distribution.integ-test-zip", "opensearch", self.version
            )
        return Artifact(
            "org.elasticsearch.distribution.integ-test-zip", "elasticsearch", self.version
        )


@dataclass
class RunningEngine:
    spec: EngineSpec
    url: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def engine_specs(settings: Settings) -> dict[str, EngineSpec]:
    """Every engine the settings name, whether or not this machine can run it."""
    bed = settings.testbed
    specs = [
        EngineSpec("opensearch", "opensearch", bed.opensearch_version, 11),
        EngineSpec("opensearch3", "opensearch", bed.opensearch3_version, 21),
        EngineSpec("elasticsearch", "elasticsearch", bed.elasticsearch_version, 17),
    ]
    if bed.elasticsearch9_version:
        specs.append(EngineSpec("elasticsearch9", "elasticsearch", bed.elasticsearch9_version, 21))
    return {spec.name: spec for spec in specs}


def runnable_engines(settings: Settings) -> list[str]:
    """Names of the engines whose Java requirement this machine meets."""
    return [
        name
        for name, spec in engine_specs(settings).items()
        if has_java(spec.min_java, settings.testbed.java_home)
    ]


def prepare(spec: EngineSpec, settings: Settings) -> Path:
    """Fetch and unpack ``spec``'s distribution (once), add the configured modules to an
    OpenSearch (``opensearch_modules``); return its home directory."""
    zip_path = fetch(
        spec.distribution,
        settings.cache_dir,
        settings.testbed.maven_repository,
        version_setting=spec.version_setting,
    )
    home = unpack(zip_path, engines_dir(settings))
    if spec.flavor == "opensearch":
        install_modules(
            home,
            spec.version,
            settings.testbed.opensearch_modules,
            settings.cache_dir,
            settings.testbed.maven_repository,
        )
    return home


def engines_dir(settings: Settings) -> Path:
    if settings.testbed.engines_dir is not None:
        return settings.testbed.engines_dir
    if os.geteuid() == 0:
        return Path("/var/cache/rerank-sidecar/engines")
    return settings.cache_dir / "dist"


def start_engine(
    spec: EngineSpec,
    settings: Settings,
    *,
    http_port: int | None = None,
    start_timeout_s: float | None = None,
) -> RunningEngine:
    """Start a single-node ``spec`` on loopback and wait for it to turn green."""
    java = find_java(spec.min_java, settings.testbed.java_home)
    home = prepare(spec, settings)
    port = pick_port(http_port, f"{spec.name} HTTP")
    scratch = Path(tempfile.mkdtemp(prefix=f"rerank-testbed-{spec.name}-"))
    config_dir = scratch / "config"
    # A private copy of the config dir lets several nodes of one version run side by side.
    shutil.copytree(home / "config", config_dir)
    _point_jvm_files_at(config_dir / "jvm.options", scratch)
    options = {
        "cluster.name": f"rerank-testbed-{spec.name}-{port}",
        "node.name": "node-0",
        "network.host": LOOPBACK,
        "http.port": str(port),
        "transport.port": str(free_port()),
        "discovery.type": "single-node",
        "path.data": str(scratch / "data"),
        "path.logs": str(scratch / "logs"),
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    if spec.flavor == "elasticsearch":
        # The integ-test zips of Elasticsearch 8 and 9 carry x-pack-security, which would
        # auto-enable TLS and passwords; nothing else differs in how 8 and 9 start.
        options["xpack.security.enabled"] = "false"
    prefix = "OPENSEARCH" if spec.flavor == "opensearch" else "ES"
    heap = settings.testbed.heap
    env = {
        **os.environ,
        "JAVA_HOME": str(java.home),
        f"{prefix}_JAVA_HOME": str(java.home),
        f"{prefix}_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
        f"{prefix}_PATH_CONF": str(config_dir),
        f"{prefix}_TMPDIR": str(scratch / "tmp"),
    }
    for sub in ("tmp", "logs", "data"):
        (scratch / sub).mkdir()
    user = engine_user(settings.testbed.engine_user)
    give_to(user, scratch)
    argv = [str(home / "bin" / spec.flavor)] + [
        f"-E{key}={value}" for key, value in options.items()
    ]
    process = ManagedProcess.spawn(
        spec.name, argv, log_path=scratch / "console.log", env=env, scratch_dir=scratch, user=user
    )
    engine = RunningEngine(spec, f"http://{LOOPBACK}:{port}", process)
    timeout = settings.testbed.start_timeout_s if start_timeout_s is None else start_timeout_s
    try:
        wait_green(engine, timeout)
    except BaseException:
        engine.stop()
        raise
    return engine


def _point_jvm_files_at(jvm_options: Path, scratch: Path) -> None:
    """jvm.options writes gc logs, error files and heap dumps under the engine's home, which the
    engine account may not write to; send them to the node's scratch directory instead."""
    text = jvm_options.read_text(encoding="utf-8")
    text = text.replace("file=logs/", f"file={scratch}/logs/")
    text = text.replace("ErrorFile=logs/", f"ErrorFile={scratch}/logs/")
    text = text.replace("HeapDumpPath=data", f"HeapDumpPath={scratch}/data")
    jvm_options.write_text(text, encoding="utf-8")


def wait_green(engine: RunningEngine, timeout_s: float) -> None:
    """Poll cluster health until green; fail early if the process dies."""
    deadline = time.monotonic() + timeout_s
    health_url = f"{engine.url}/_cluster/health?wait_for_status=green&timeout=1s"
    last_status = "no answer yet"
    while True:
        if not engine.process.is_running():
            tail = engine.process.log_tail()
            if "BindException" in tail or "Address already in use" in tail:
                raise PortInUseError(
                    f"{engine.spec.name} could not bind its ports on {LOOPBACK} (taken by "
                    f"another process after we picked them). Run the start again.\n{tail}"
                )
            raise EngineStartError(
                f"{engine.spec.name} {engine.spec.version} exited with code "
                f"{engine.process.exit_code()} while starting. Its log ends:\n{tail}"
            )
        try:
            with urllib.request.urlopen(health_url, timeout=5) as response:
                status = json.load(response).get("status")
                if status == "green":
                    return
                last_status = f"status {status}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last_status = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise EngineStartError(
                f"{engine.spec.name} {engine.spec.version} did not turn green within "
                f"{timeout_s:g}s (last: {last_status}). A slow or busy machine needs more time: "
                f"raise RERANK_TESTBED__START_TIMEOUT_S. Its log ends:\n"
                f"{engine.process.log_tail()}"
            )
        time.sleep(0.5)
