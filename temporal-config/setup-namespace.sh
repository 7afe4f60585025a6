#!/bin/sh
# One-shot setup for the compose stack (service `temporal-setup`, temporalio/admin-tools image): waits for the
# server, makes sure the namespace exists and registers every custom search attribute listed in
# search-attributes.json. Idempotent: attributes that already exist are skipped.
set -eu
ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
ATTRS="${SEARCH_ATTRIBUTES_FILE:-/etc/ainode/search-attributes.json}"
export TEMPORAL_ADDRESS="$ADDRESS"

echo "[temporal-setup] waiting for $ADDRESS"
i=0
until temporal operator cluster health >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -le 120 ] || { echo "[temporal-setup] $ADDRESS not healthy after 120 s" >&2; exit 1; }
  sleep 1
done

if ! temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  temporal operator namespace create --namespace "$NAMESPACE" --retention 72h
  echo "[temporal-setup] created namespace $NAMESPACE"
fi

# A new namespace reaches the servers' namespace cache after a few seconds; wait until it answers.
i=0
until existing="$(temporal operator search-attribute list --namespace "$NAMESPACE" 2>/dev/null)"; do
  i=$((i + 1)); [ "$i" -le 60 ] || { echo "[temporal-setup] namespace $NAMESPACE not ready after 60 s" >&2; exit 1; }
  sleep 1
done

# search-attributes.json is a flat {"Name": "Type"} object: one pair per line is enough to parse without jq.
sed -n 's/^[[:space:]]*"\([A-Za-z0-9_]*\)"[[:space:]]*:[[:space:]]*"\([A-Za-z]*\)".*/\1 \2/p' "$ATTRS" |
  while read -r name type; do
    if printf '%s\n' "$existing" | grep -qw "$name"; then
      echo "[temporal-setup] search attribute $name exists"
    else
      temporal operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type "$type"
      echo "[temporal-setup] created search attribute $name ($type)"
    fi
  done
echo "[temporal-setup] done"
