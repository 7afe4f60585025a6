#!/usr/bin/env bash
# The Docker Compose v2 CLI, so the suite can validate docker-compose.yml with the real tool
# (test/integration/compose-config.test.ts) without a Docker registry or a compose package: built once with
# `go install` into the cache. v2.28.1: Debian's docker-compose 1.29 rejects today's file (top-level `name:`), and
# the Go module proxy refuses v2.35+ (`exclude` directives in go.mod); v2.28.1 has neither problem.
# Usage: install-compose.sh BIN_DIR   → installs BIN_DIR/docker-compose, prints what it did.
set -euo pipefail
BIN="${1:?usage: install-compose.sh BIN_DIR}"
VERSION="${AINODE_COMPOSE_VERSION:-v2.28.1}"
CACHE="${AINODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ainode}"
mkdir -p "$BIN" "$CACHE/logs"
if [ -x "$BIN/docker-compose" ] && [ "$(cat "$BIN/.docker-compose-version" 2>/dev/null)" = "$VERSION" ]; then
  echo "$BIN/docker-compose ($VERSION)"; exit 0
fi
command -v go >/dev/null 2>&1 || { echo "no Go toolchain to build docker compose $VERSION" >&2; exit 1; }
tmp="$BIN/.compose-build"; rm -rf "$tmp"; mkdir -p "$tmp"
if ! (cd /tmp && GOBIN="$tmp" go install "github.com/docker/compose/v2/cmd@$VERSION") >>"$CACHE/logs/install-compose.log" 2>&1; then
  rm -rf "$tmp"; echo "go install of docker compose $VERSION failed; see $CACHE/logs/install-compose.log" >&2; exit 1
fi
mv "$tmp/cmd" "$BIN/docker-compose"; rm -rf "$tmp"
echo "$VERSION" >"$BIN/.docker-compose-version"
echo "built $BIN/docker-compose ($VERSION) with go install"
