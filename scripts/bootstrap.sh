#!/usr/bin/env bash
# Installs everything rerank-sidecar needs on a fresh Debian machine, idempotently:
# Debian packages (redis-server, maven, a Java 17), then a virtualenv in .venv with the project
# and its pinned dependencies. Downloads are cached outside the repo (~/.cache/pip, ~/.m2,
# ~/.cache/rerank-sidecar), so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v mvn >/dev/null || missing+=(maven)
command -v java >/dev/null || ls /usr/lib/jvm/*/bin/java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v "$PYTHON" >/dev/null || missing+=(python3 python3-venv)
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v "$PYTHON" >/dev/null || PYTHON=python3

stamp="$VENV/.bootstrap-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python packages into $VENV (first run downloads torch: ~3 GB)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
  rm -f "$VENV"/.bootstrap-*
  touch "$stamp"
fi
