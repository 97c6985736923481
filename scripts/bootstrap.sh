#!/usr/bin/env bash
# Installs everything rerank-sidecar needs on a fresh Debian machine, idempotently:
# Debian packages (redis-server, maven, a Java 17, Node.js and npm, chromium, nginx), then a virtualenv in .venv
# with the project and its pinned dependencies, and the official clients the tests drive that
# cannot live in the venv: elasticsearch-py 9 in .venv/clients/es9 (the venv pins 8.x) and the
# JavaScript clients in tests/clients/js/node_modules. Downloads are cached outside the repo
# (~/.cache/pip, ~/.npm, ~/.cache/rerank-sidecar), so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v mvn >/dev/null || missing+=(maven)
command -v java >/dev/null || ls /usr/lib/jvm/*/bin/java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v "$PYTHON" >/dev/null || missing+=(python3 python3-venv)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)  # headless: the tests look at HTML reports
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)  # the edge-routing tests
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

# elasticsearch-py 9 beside the venv's 8.x: tests run it from a subprocess with PYTHONPATH.
es9="$VENV/clients/es9"
es9_reqs=tests/clients/python/es9-requirements.txt
es9_stamp="$es9/.bootstrap-$(sha256sum <"$es9_reqs" | cut -c1-16)"
if [ ! -f "$es9_stamp" ]; then
  echo "bootstrap: installing elasticsearch-py 9 into $es9"
  rm -rf "$es9"
  "$VENV/bin/python" -m pip install -q --no-deps --target "$es9" -r "$es9_reqs"
  touch "$es9_stamp"
fi

# The JavaScript clients (both @elastic/elasticsearch majors under npm aliases, and
# @opensearch-project/opensearch), exactly as package-lock.json pins them.
js=tests/clients/js
js_stamp="$js/node_modules/.bootstrap-$(cat "$js/package.json" "$js/package-lock.json" | sha256sum | cut -c1-16)"
if [ ! -f "$js_stamp" ]; then
  echo "bootstrap: installing the JavaScript clients into $js/node_modules"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$js_stamp"
fi

# Go tools of the deploy tests (helm, compose-go's validator and loader), built from the Go module
# proxy into ~/.cache/rerank-sidecar/tools once (a few minutes the first time, then nothing).
bash scripts/go-tools.sh
