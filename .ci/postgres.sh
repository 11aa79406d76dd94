#!/usr/bin/env bash
# Start a local PostgreSQL for the multi-worker tests (Debian's packages), idempotently.
# Prints the URL to use; the tests skip with a reason when no server is reachable.
set -uo pipefail
URL="postgresql://snnas:snnas@127.0.0.1:5432/snnas_test"
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 \
    || { echo "postgres: could not install Debian's postgresql" >&2; exit 0; }
fi
read -r version cluster _ < <(pg_lsclusters --no-header 2>/dev/null | head -n 1)
if [ -z "${version:-}" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  pg_createcluster "$version" main >/dev/null 2>&1
  cluster=main
fi
pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 || true
for _ in $(seq 1 20); do
  su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
  sleep 0.5
done
su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='snnas'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"create role snnas login password 'snnas'\"" >/dev/null
su postgres -c "psql -qtAc \"select 1 from pg_database where datname='snnas_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O snnas snnas_test" >/dev/null
echo "$URL"
