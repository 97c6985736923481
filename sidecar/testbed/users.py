"""An unprivileged account for the engines, which refuse to run as root."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from sidecar.testbed.errors import EngineStartError


def engine_user(configured: str) -> str | None:
    """The account engines run as: ``configured`` when we are root (created if missing), else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(configured)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise EngineStartError(
                f"Elasticsearch and OpenSearch refuse to run as root, and the account "
                f"{configured!r} does not exist. Create it (`useradd --system {configured}`) or "
                "run the test bed as a non-root user."
            ) from None
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", configured],
            check=True,
            capture_output=True,
        )
    return configured


def give_to(user: str | None, path: Path) -> None:
    """Make ``path`` (recursively) owned by ``user`` so the engine can write its data there."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
