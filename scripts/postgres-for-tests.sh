#!/usr/bin/env bash
# Makes a PostgreSQL server from Debian available on 127.0.0.1:5432 for the tests and prints the
# URL they should use (a role that may create databases; each test makes its own database).
# Idempotent: installs, starts and creates the role only when needed. Needs root or sudo.
set -euo pipefail

role=iothub_test
password=iothub_test
url="postgres://$role:$password@127.0.0.1:5432/postgres"

as_root() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi; }
as_postgres() { as_root runuser -u postgres -- "$@"; }

# Only the URL may reach stdout, which the caller captures: whatever the tools print (say,
# pg_ctlcluster's "Removed stale pid file.") goes to stderr. A function rather than an `exec`
# of file descriptors, because the server started here would inherit a spare descriptor and keep
# the caller's $(...) waiting for ever.
prepare() {
  if ! command -v pg_lsclusters >/dev/null; then
    echo "postgres-for-tests: installing postgresql from Debian" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi

  cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
  if [[ -z "$cluster" ]]; then
    as_root pg_createcluster 15 main >/dev/null
    cluster="15 main"
  fi
  # shellcheck disable=SC2086 # "version name" are two arguments
  if ! pg_lsclusters --no-header | awk 'NR==1 {print $4}' | grep -qx online; then
    # A server that was killed rather than stopped (a machine image taken while it ran) leaves
    # its socket lock behind, and a new server refuses to start while the lock names a pid.
    lock=/var/run/postgresql/.s.PGSQL.5432.lock
    if [[ -f $lock ]] && ! ps -o stat= -p "$(head -n1 "$lock")" | grep -qv '^Z'; then
      echo "postgres-for-tests: removing the stale $lock" >&2
      as_root rm -f "$lock"
    fi
    as_root pg_ctlcluster $cluster start
  fi

  for _ in $(seq 1 30); do
    as_postgres pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.5
  done

  as_postgres psql -q -h /var/run/postgresql -v ON_ERROR_STOP=1 -d postgres >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
    CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SQL
}

prepare >&2
echo "$url"
