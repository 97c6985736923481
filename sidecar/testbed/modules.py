"""Engine modules added to OpenSearch's integ-test distribution from Maven Central.

OpenSearch 2.x's integ-test zip carries a single module (``transport-netty4``): no ``_rank_eval``
and no mustache search templates. Maven Central serves each module's classes as a "client" jar
(``org.opensearch.plugin:<module>-client:<engine version>``), so the test bed lays them out as
OpenSearch's full distribution does, one directory per module under ``<home>/modules``::

    modules/lang-mustache/
        lang-mustache-client-2.19.6.jar     the module's classes
        compiler-0.9.14.jar                 its runtime dependency, from the jar's .pom
        plugin-descriptor.properties        as OpenSearch's build writes it
        plugin-security.policy              the module's grants (mustache reflects)

OpenSearch 3.x's integ-test zip already ships both modules (and Maven Central serves no
``rank-eval-client`` 3.6.0), so a module the distribution has is left as it is. Elasticsearch
publishes no ``rank-eval-client`` after 7.17: its engines get nothing from here.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sidecar.testbed.artifacts import Artifact, fetch
from sidecar.testbed.errors import ArtifactUnavailableError

MODULES_SETTING = "RERANK_TESTBED__OPENSEARCH_MODULES"
MARKER = "# Installed by the rerank-sidecar test bed from "
"""First line of the descriptors we write: how a later run tells ours from the distribution's."""

_POM = "{http://maven.apache.org/POM/4.0.0}"


@dataclass(frozen=True)
class ModuleSpec:
    """One OpenSearch module, as ``modules/<module>/build.gradle`` of OpenSearch declares it."""

    name: str
    description: str
    classnames: tuple[str, ...]
    """The plugin class, newest name first: OpenSearch 3 renamed ``FooPlugin`` to
    ``FooModulePlugin``; the one the jar holds is used."""
    security_policy: str | None = None

    def client(self, version: str) -> Artifact:
        return Artifact("org.opensearch.plugin", f"{self.name}-client", version, "jar")


_MUSTACHE_POLICY = """\
// The lang-mustache module's grants, as OpenSearch ships them
// (modules/lang-mustache/src/main/plugin-metadata/plugin-security.policy).
grant {
  // needed to do crazy reflection
  permission java.lang.RuntimePermission "accessDeclaredMembers";
};
"""

OPENSEARCH_MODULES: dict[str, ModuleSpec] = {
    spec.name: spec
    for spec in (
        ModuleSpec(
            "rank-eval",
            "The Rank Eval module adds APIs to evaluate ranking quality.",
            (
                "org.opensearch.index.rankeval.RankEvalModulePlugin",
                "org.opensearch.index.rankeval.RankEvalPlugin",
            ),
        ),
        ModuleSpec(
            "lang-mustache",
            "Mustache scripting integration for OpenSearch",
            (
                "org.opensearch.script.mustache.MustacheModulePlugin",
                "org.opensearch.script.mustache.MustachePlugin",
            ),
            _MUSTACHE_POLICY,
        ),
    )
}


def install_modules(
    home: Path,
    version: str,
    names: Iterable[str],
    cache_dir: Path,
    repository: str,
) -> list[str]:
    """Make ``home``'s modules directory hold ``names``: install each one it lacks, and remove
    modules an earlier run installed that ``names`` no longer lists. Returns what it installed.

    Idempotent and cheap when nothing changes (a few ``stat`` calls). A module is built in a
    staging directory beside ``modules/`` and moved into place in one rename, so a node never
    sees half a module, and a concurrent install of the same module loses the race harmlessly.
    """
    wanted = list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in OPENSEARCH_MODULES]
    if unknown:
        raise ArtifactUnavailableError(
            f"unknown OpenSearch module(s) {', '.join(unknown)} in {MODULES_SETTING}; "
            f"the test bed can add: {', '.join(OPENSEARCH_MODULES)}."
        )
    modules_dir = home / "modules"
    for stale in sorted(modules_dir.glob("*/plugin-descriptor.properties")):
        if stale.parent.name not in wanted and _installed_by_us(stale):
            shutil.rmtree(stale.parent)
    installed = []
    for name in wanted:
        if (modules_dir / name / "plugin-descriptor.properties").is_file():
            continue  # shipped by the distribution (OpenSearch 3.x), or installed earlier
        _install(OPENSEARCH_MODULES[name], home, version, cache_dir, repository)
        installed.append(name)
    return installed


def _installed_by_us(descriptor: Path) -> bool:
    with descriptor.open(encoding="utf-8") as lines:
        return lines.readline().startswith(MARKER)


def _install(spec: ModuleSpec, home: Path, version: str, cache_dir: Path, repository: str) -> None:
    client = spec.client(version)
    advice = (
        f"Maven Central serves {client.artifact} for most OpenSearch versions (listed in "
        f"{client.metadata_url(repository)}); pick an engine version that has it, or leave the "
        f"module out: {MODULES_SETTING}='[]' (then the engine has no {spec.name})."
    )
    client_jar = fetch(client, cache_dir, repository, advice=advice)
    jars = [client_jar]
    for dependency in runtime_dependencies(client.path_in(cache_dir / "m2", "pom")):
        jars.append(fetch(dependency, cache_dir, repository, advice=advice))
    classname = _plugin_class(spec, client_jar)
    staging = Path(tempfile.mkdtemp(prefix=f".module-{spec.name}-", dir=home))
    try:
        for jar in jars:
            _write(staging / jar.name, jar.read_bytes())
        descriptor = _descriptor(spec, client, classname, _java_version(home))
        _write(staging / "plugin-descriptor.properties", descriptor.encode("utf-8"))
        if spec.security_policy is not None:
            _write(staging / "plugin-security.policy", spec.security_policy.encode("utf-8"))
        # mkdtemp makes a 0700 directory; the engine account (not us, under root) must read it.
        os.chmod(staging, 0o755)
        target = home / "modules" / spec.name
        try:
            os.replace(staging, target)
        except OSError as exc:
            if (target / "plugin-descriptor.properties").is_file():
                return  # another test bed installed it at the same moment
            raise ArtifactUnavailableError(
                f"cannot install the {spec.name} module into {target} ({exc}); a directory "
                "without a plugin-descriptor.properties is in the way: remove it."
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def runtime_dependencies(pom: Path) -> list[Artifact]:
    """The compile and runtime jar dependencies a module's ``.pom`` declares (its Gradle
    ``.module`` says the same). Their own dependencies are not followed: OpenSearch's poms
    exclude ``*:*`` from each, because the module ships exactly these jars."""
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ArtifactUnavailableError(f"cannot read {pom}: {exc}") from None
    found = []
    for dependency in root.iterfind(f"{_POM}dependencies/{_POM}dependency"):
        field = {
            tag: (dependency.findtext(f"{_POM}{tag}") or "").strip()
            for tag in ("groupId", "artifactId", "version", "scope", "optional", "type")
        }
        if field["scope"] not in ("", "compile", "runtime") or field["optional"] == "true":
            continue
        if field["type"] not in ("", "jar") or dependency.findtext(f"{_POM}classifier"):
            continue
        group, artifact, version = field["groupId"], field["artifactId"], field["version"]
        if not re.fullmatch(r"[\w.+-]+", version):
            raise ArtifactUnavailableError(
                f"{pom} declares {group}:{artifact} without a plain version ({version!r}); "
                "the test bed cannot install this module."
            )
        found.append(Artifact(group, artifact, version, "jar"))
    return found


def _plugin_class(spec: ModuleSpec, jar: Path) -> str:
    with zipfile.ZipFile(jar) as archive:
        entries = set(archive.namelist())
    for classname in spec.classnames:
        if f"{classname.replace('.', '/')}.class" in entries:
            return classname
    raise ArtifactUnavailableError(
        f"{jar} holds none of the plugin classes {', '.join(spec.classnames)}; this "
        f"OpenSearch version is not supported: leave the module out ({MODULES_SETTING})."
    )


def _java_version(home: Path) -> str:
    """The ``java.version`` the distribution's own modules declare (11 for 2.x, 21 for 3.x)."""
    for descriptor in sorted((home / "modules").glob("*/plugin-descriptor.properties")):
        if _installed_by_us(descriptor):
            continue
        match = re.search(r"^java\.version=(\S+)", descriptor.read_text("utf-8"), re.M)
        if match:
            return match.group(1)
    return "11"


def _descriptor(spec: ModuleSpec, client: Artifact, classname: str, java_version: str) -> str:
    # The keys OpenSearch's build writes for a bundled module (PluginBuildPlugin's template).
    fields = {
        "description": spec.description,
        "version": client.version,
        "name": spec.name,
        "classname": classname,
        "java.version": java_version,
        "opensearch.version": client.version,
        "custom.foldername": "",
        "extended.plugins": "",
        "has.native.controller": "false",
    }
    lines = [f"{MARKER}{client.coordinate}"]
    lines += [f"{key}={value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o644)
