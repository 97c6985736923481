#!/usr/bin/env bash
# Builds the Go tools of scripts/go-tools.txt (helm, compose-go's validator and loader) from the Go
# module proxy into ~/.cache/rerank-sidecar/tools/<name>-<version>, once: a cached binary is kept, so a
# second run takes milliseconds. The first build of helm takes a few minutes on 2 cores (its
# modules ~400 MB into the Go module cache, the compile into the Go build cache).
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${RERANK_TOOLS_DIR:-$HOME/.cache/rerank-sidecar/tools}"
if ! command -v go >/dev/null; then
  echo "go-tools: no 'go' on PATH: helm and the compose validator are not built (the deploy tests fail in CI, skip locally)" >&2
  exit 0
fi
mkdir -p "$tools"
while read -r name package version; do
  case "$name" in "" | "#"*) continue ;; esac
  if [ "$version" = local ]; then
    version="local-$(cat "$package"/go.mod "$package"/go.sum "$package"/*.go | sha256sum | cut -c1-12)"
  fi
  target="$tools/$name-$version"
  [ -x "$target" ] && continue
  echo "go-tools: building $name $version from the Go module proxy (first run only)"
  ldflags="-s -w"
  if [ "$name" = helm ]; then
    # As helm's Makefile does: its version, and the Kubernetes version of the client-go it
    # was built with (otherwise helm assumes Kubernetes 1.20 for capabilities and lint).
    k8s_minor=37 # helm v3.22.0 is built on k8s.io/client-go v0.37
    ldflags="$ldflags -X helm.sh/helm/v3/internal/version.version=$version"
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
    done
  fi
  if [[ "$version" = local-* ]]; then
    (cd "$package" && GOFLAGS="${GOFLAGS:-} -trimpath -mod=readonly" go build -ldflags="$ldflags" -o "$target.tmp" .)
  else
    gobin=$(mktemp -d)
    GOBIN="$gobin" GOFLAGS="${GOFLAGS:-} -trimpath" go install -ldflags="$ldflags" "$package@$version"
    mv "$gobin/$(basename "$package")" "$target.tmp"
    rm -rf "$gobin"
  fi
  mv "$target.tmp" "$target"
done <scripts/go-tools.txt
