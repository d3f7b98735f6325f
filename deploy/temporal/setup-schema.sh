#!/bin/sh
# Runs once in the admin-tools image before the server starts: creates Temporal's two PostgreSQL
# databases on first start, and on later starts upgrades their schema to the image's version
# (update-schema is a no-op when it is current). Connection settings come from SQL_* variables.
set -eu

schemas=/etc/temporal/schema/postgresql/v12

prepare() {
  db=$1
  dir=$schemas/$2/versioned
  # An existing database just moves to the latest schema version...
  if temporal-sql-tool --db "$db" update-schema -d "$dir"; then
    echo "database $db is at the latest schema"
    return
  fi
  # ...a missing one (update-schema fails: no database or no version table) is created from scratch.
  echo "creating database $db"
  # Tolerate an existing database (a first run that stopped half-way); real errors surface in the next step.
  temporal-sql-tool --db "$db" create-database || echo "database $db exists already"
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema -d "$dir"
}

prepare "${TEMPORAL_DB:-temporal}" temporal
prepare "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}" visibility
