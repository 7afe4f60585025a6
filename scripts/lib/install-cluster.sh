#!/usr/bin/env bash
# What cluster mode (`npm run cluster`, scripts/cluster.ts, and the suite's cluster test) needs, run by scripts/setup
# (the suite's test/cluster/ runs in `npm test`) and again by the cluster command itself (a no-op once done):
#   - the real Temporal server and its schema tool (`temporal-sql-tool`), built once with `go install` from the
#     server module (v1.31 and later need a newer Go than Debian's; v1.30.4 builds with it in ~2 min);
#   - PostgreSQL (Debian's `postgresql`, 15 on bookworm): only its binaries are used, one private data dir per
#     cluster (.ainode/cluster/pg), never the system's service.
# Idempotent and fast when done. Prints one JSON object with the paths (also written to .ainode/cluster-tools.json).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${AINODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ainode}"
TEMPORAL_SERVER_VERSION="${AINODE_TEMPORAL_SERVER_VERSION:-v1.30.4}"
TDIR="$CACHE/temporal-server-$TEMPORAL_SERVER_VERSION/bin"
LOG="$CACHE/logs/install-cluster.log"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
mkdir -p "$TDIR" "$CACHE/logs" "$ROOT/.ainode"
say() { echo "[install-cluster] $*" >&2; }

# ---------------------------------------------------------------- Temporal server + schema tool
if [ ! -x "$TDIR/temporal-server" ] || [ ! -x "$TDIR/temporal-sql-tool" ]; then
  command -v go >/dev/null 2>&1 || { say "Go is needed to build the Temporal server (go install)"; exit 1; }
  say "building the Temporal server $TEMPORAL_SERVER_VERSION and temporal-sql-tool with go install (minutes, once)"
  tmp="$TDIR/.build"; rm -rf "$tmp"; mkdir -p "$tmp"
  (cd /tmp && GOBIN="$tmp" go install "go.temporal.io/server/cmd/server@$TEMPORAL_SERVER_VERSION" \
    "go.temporal.io/server/cmd/tools/sql@$TEMPORAL_SERVER_VERSION") >>"$LOG" 2>&1 ||
    { say "go install failed; see $LOG"; exit 1; }
  mv "$tmp/server" "$TDIR/temporal-server"; mv "$tmp/sql" "$TDIR/temporal-sql-tool"; rm -rf "$tmp"
fi

# ---------------------------------------------------------------- PostgreSQL binaries
pg_bindir() { # the newest /usr/lib/postgresql/<v>/bin with initdb, or empty
  local d; d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && echo "$d" || true
}
PG_BIN="$(pg_bindir)"
if [ -z "$PG_BIN" ]; then
  say "installing PostgreSQL with apt-get"
  { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends postgresql; } \
    >>"$LOG" 2>&1 || { say "apt-get install postgresql failed; see $LOG"; exit 1; }
  PG_BIN="$(pg_bindir)"
  [ -n "$PG_BIN" ] || { say "postgresql installed but no initdb under /usr/lib/postgresql/*/bin"; exit 1; }
fi

json="{\"temporalServer\":\"$TDIR/temporal-server\",\"temporalSqlTool\":\"$TDIR/temporal-sql-tool\",\"temporalServerVersion\":\"$TEMPORAL_SERVER_VERSION\",\"pgBin\":\"$PG_BIN\"}"
echo "$json" >"$ROOT/.ainode/cluster-tools.json"
echo "$json"
