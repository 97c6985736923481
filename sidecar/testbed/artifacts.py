"""Maven artifacts of the test bed: the engines' integ-test zips (unpacked once beside the
cache) and the jars of the OpenSearch modules added to them, each fetched once with Maven into
the cache's own local repository."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sidecar.testbed.errors import ArtifactUnavailableError

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


@dataclass(frozen=True)
class Artifact:
    """A Maven coordinate: an engine's integ-test zip, or a jar (``extension="jar"``)."""

    group: str
    artifact: str
    version: str
    extension: str = "zip"

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}:{self.extension}"

    def path_in(self, local_repo: Path, extension: str | None = None) -> Path:
        """Where Maven keeps the artifact (or its ``.pom``, with ``extension="pom"``)."""
        group_path = Path(*self.group.split("."))
        return (
            local_repo
            / group_path
            / self.artifact
            / self.version
            / f"{self.artifact}-{self.version}.{extension or self.extension}"
        )

    def metadata_url(self, repository: str) -> str:
        group_path = self.group.replace(".", "/")
        return f"{repository.rstrip('/')}/{group_path}/{self.artifact}/maven-metadata.xml"


def fetch(
    dist: Artifact,
    cache_dir: Path,
    repository: str,
    *,
    version_setting: str = "RERANK_TESTBED__OPENSEARCH_VERSION",
    advice: str | None = None,
) -> Path:
    """The file of ``dist`` in the cache's Maven repository, downloading it with mvn if needed
    (Maven fetches the artifact's ``.pom`` beside it).

    ``version_setting`` is the environment variable a failure message tells the user to set;
    ``advice`` replaces that sentence of the message."""
    local_repo = cache_dir / "m2"
    path = dist.path_in(local_repo)
    if path.is_file():
        return path
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ArtifactUnavailableError(
            f"cannot fetch {dist.coordinate}: Maven (mvn) is not installed. "
            "Install it with `apt-get install maven` (make setup does this)."
        )
    command = [
        mvn,
        "-B",
        "-q",
        f"{DEPENDENCY_PLUGIN}:get",
        f"-Dartifact={dist.coordinate}",
        "-Dtransitive=false",
        f"-DremoteRepositories=central::default::{repository}",
        f"-Dmaven.repo.local={local_repo}",
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=1800, cwd=tempfile.gettempdir()
        )
    except subprocess.TimeoutExpired:
        raise ArtifactUnavailableError(
            f"fetching {dist.coordinate} from {repository} took over 30 minutes; check the "
            "network to Maven Central and try again."
        ) from None
    if result.returncode != 0 or not path.is_file():
        output = (result.stdout + result.stderr).strip().splitlines()
        reason = "\n".join(line for line in output[-8:] if line.strip())
        listing = f"listed in {dist.metadata_url(repository)}"
        if dist.group.startswith("org.elasticsearch") and dist.version.startswith("9."):
            # Checked 2026-12-01: served by exact version, missing from the metadata file.
            listing += "; Elasticsearch 9.x zips are served though that file lists none: 9.2.4"
        if advice is None:
            advice = (
                f"Pick a version that is served ({listing}) and set it in the test-bed "
                f"settings: {version_setting}."
            )
        raise ArtifactUnavailableError(
            f"could not fetch {dist.coordinate} from {repository}:\n{reason}\n{advice}"
        )
    return path


def unpack(zip_path: Path, dest_root: Path) -> Path:
    """Unpack ``zip_path`` once under ``dest_root``; return the distribution's home directory."""
    home = dest_root / zip_path.stem
    if (home / "bin").is_dir():
        return home
    dest_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{zip_path.stem}-", dir=dest_root))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist():
                target = staging / info.filename
                if not target.resolve().is_relative_to(staging.resolve()):
                    raise ArtifactUnavailableError(
                        f"{zip_path} holds an unsafe path {info.filename}"
                    )
                archive.extract(info, staging)
                mode = info.external_attr >> 16
                # zipfile drops permission bits; the engines' launch scripts need their x bit.
                if mode and not info.is_dir():
                    os.chmod(target, stat.S_IMODE(mode))
        tops = [p for p in staging.iterdir()]
        if len(tops) != 1 or not (tops[0] / "bin").is_dir():
            raise ArtifactUnavailableError(f"{zip_path} does not look like an engine distribution")
        os.replace(tops[0], home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return home
