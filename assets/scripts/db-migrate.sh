#!/usr/bin/env bash
# Step "migrate": applies the app's versioned schema migrations in order, each once,
# recording it in schema_migrations. Run as root via `sudo bash -s -- apply`.
# Reads:
#   STEP          log prefix
#   DB_NAME       database
#   MIGRATIONS        the versions, in order (array)
#   MIGRATION_<i>_SQL the SQL of MIGRATIONS[i]
set -euo pipefail

# @vars

# @lib

sql() { mariadb --protocol=socket -N -B "$DB_NAME" "$@"; }

apply() {
    local i version text applied=0
    sql <<'SQL'
CREATE TABLE IF NOT EXISTS schema_migrations (
    version VARCHAR(191) NOT NULL PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
SQL
    for ((i = 0; i < ${#MIGRATIONS[@]}; i++)); do
        version=${MIGRATIONS[i]}
        [[ "$version" =~ ^[0-9]{3}_[a-z0-9_]+$ ]] || fatal "migration name '$version' must look like 001_create_notes"
        if [[ -n "$(sql -e "SELECT 1 FROM schema_migrations WHERE version = '$version'")" ]]; then
            continue
        fi
        info "applying migration $version"
        text="MIGRATION_${i}_SQL"
        printf '%s' "${!text}" | sql || fatal "migration $version failed; fix it and run pulumi up again (earlier ones stay applied)"
        sql -e "INSERT INTO schema_migrations (version) VALUES ('$version')"
        applied=$((applied + 1))
    done
    info "schema up to date ($applied applied now, $(sql -e 'SELECT COUNT(*) FROM schema_migrations') in total)"
}

delete() {
    info "the schema is data and stays"
}

# verify: every migration the app ships is recorded as applied.
verify() {
    local version
    for version in "${MIGRATIONS[@]}"; do
        [[ -n "$(sql -e "SELECT 1 FROM schema_migrations WHERE version = '$version'" 2>/dev/null)" ]] || drift "migration $version: not applied"
    done
}

main "$@" </dev/null
