#!/bin/sh
# Runs once in the admin-tools image after the server is healthy: the namespace the workers use and
# the search attributes every agent run upserts (without them a run's first workflow task fails).
# Both steps are idempotent, so `docker compose up` can run it on every start.
set -eu

address=${TEMPORAL_ADDRESS:-temporal:7233}
namespace=${TEMPORAL_NAMESPACE:-default}

# wait_for WHAT COMMAND...: retry for up to a minute (the server, then the new namespace, take a moment).
wait_for() {
  what=$1
  shift
  tries=0
  until "$@" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
      echo "gave up waiting for $what" >&2
      exit 1
    fi
    sleep 2
  done
}

wait_for "Temporal at $address" temporal operator cluster health --address "$address"

if ! temporal operator namespace describe --address "$address" --namespace "$namespace" >/dev/null 2>&1; then
  temporal operator namespace create --address "$address" --namespace "$namespace" \
    --retention "${TEMPORAL_RETENTION:-72h}"
fi
# A new namespace reaches every server role through a cache refresh, a few seconds later.
wait_for "namespace $namespace" temporal operator search-attribute list --address "$address" --namespace "$namespace"

# The product's keyword search attributes (models/search_attributes.py keeps the same list; tests/test_deploy.py checks both agree).
for name in AgentName AgentStatus AgentPattern CustomerId TenantId; do
  if ! temporal operator search-attribute list --address "$address" --namespace "$namespace" | grep -qw "$name"; then
    temporal operator search-attribute create --address "$address" --namespace "$namespace" --name "$name" --type Keyword
  fi
done
echo "namespace $namespace is ready with its search attributes"
