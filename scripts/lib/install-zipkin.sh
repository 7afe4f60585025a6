#!/usr/bin/env bash
# Zipkin's server, the dev stack's trace viewer (docs/operations.md, Observability): the self-contained
# `zipkin-server-<version>-exec.jar` from Maven Central, fetched with Maven itself (`dependency:get`, the ordinary
# client; no download URL in this repo) and copied into the cache, run later with the machine's Java 17+.
# Zipkin 3.5.1: the newest release; it needs Java 17 (Spring Boot 3), which Debian 12 ships.
# Usage: install-zipkin.sh CACHE_DIR   → prints the jar's path on stdout (progress on stderr); exit 1 on failure.
set -euo pipefail
CACHE="${1:?usage: install-zipkin.sh CACHE_DIR}"
VERSION="${AINODE_ZIPKIN_VERSION:-3.5.1}"
DIR="$CACHE/zipkin"
JAR="$DIR/zipkin-server-$VERSION-exec.jar"
LOG="$CACHE/logs/install-zipkin.log"
mkdir -p "$DIR" "$CACHE/logs"
if [ -s "$JAR" ]; then echo "$JAR"; exit 0; fi

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
  echo "installing Maven and a Java runtime from Debian" >&2
  { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
      maven openjdk-17-jre-headless; } >>"$LOG" 2>&1 || { echo "apt-get could not install maven/java (see $LOG)" >&2; exit 1; }
fi
REPO="${AINODE_MAVEN_REPO:-$HOME/.m2/repository}"
if ! mvn -B -q -Dmaven.repo.local="$REPO" dependency:get -Dtransitive=false \
    -Dartifact="io.zipkin:zipkin-server:$VERSION:jar:exec" >>"$LOG" 2>&1; then
  echo "mvn dependency:get io.zipkin:zipkin-server:$VERSION:jar:exec failed (see $LOG)" >&2; exit 1
fi
SRC="$REPO/io/zipkin/zipkin-server/$VERSION/zipkin-server-$VERSION-exec.jar"
[ -s "$SRC" ] || { echo "Maven reported success but $SRC is missing" >&2; exit 1; }
cp "$SRC.sha1" "$DIR/" 2>/dev/null || true
cp "$SRC" "$JAR.tmp" && mv "$JAR.tmp" "$JAR"
echo "$JAR"
