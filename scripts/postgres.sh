#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests, reachable only through a unix socket.
#
#   scripts/postgres.sh start DIR   # initdb into DIR/data (once), start, create styx_test,
#                                   # print the URL on the last line of stdout
#   scripts/postgres.sh stop DIR    # stop it (the data stays; rm -rf DIR to forget it)
#   scripts/postgres.sh url DIR     # print the URL only
#
# Both commands are idempotent. The server listens on no TCP port (listen_addresses=''), only
# on DIR/.s.PGSQL.5432, which works from inside any network namespace. Run as root, the server
# runs as the `postgres` system user (created if missing), since PostgreSQL refuses root.
# Durability is off (fsync=off): this is for tests, never for data you want to keep.
# PG_BIN overrides where the binaries are (default: newest /usr/lib/postgresql/*/bin, or PATH).
set -euo pipefail

usage() { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
case $cmd in start|stop|url) ;; *) usage ;; esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data
log=$dir/server.log
db=styx_test
url="postgresql+psycopg://postgres@/$db?host=$dir"

find_bin() {
    if [[ -n ${PG_BIN:-} ]]; then echo "$PG_BIN"; return; fi
    local newest
    newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n $newest && -x $newest/initdb ]]; then echo "$newest"; return; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
    echo "PostgreSQL binaries not found: install the postgresql package or set PG_BIN" >&2
    exit 3
}

# Run a PostgreSQL binary as a non-root user (as ourselves unless we are root).
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

ensure_user() {
    [[ $(id -u) -eq 0 ]] || return 0
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir "$dir" \
            --shell /usr/sbin/nologin postgres
    fi
    chown postgres: "$dir"
    chmod 0755 "$dir"
    if ! runuser -u postgres -- test -x "$dir"; then
        echo "the postgres user cannot reach $dir (a parent folder is private); use one" \
            "under /tmp, e.g. \$(mktemp -d /tmp/styx-pg-XXXXXX)" >&2
        exit 1
    fi
}

running() { as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

case $cmd in
start)
    bin=$(find_bin)
    ensure_user
    if [[ ! -f $data/PG_VERSION ]]; then
        rm -rf "$data"
        as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-sync \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! running; then
        # -k: socket directory; max_connections covers the 50-process stress test and pools.
        as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start -o \
            "-c listen_addresses='' -k '$dir' -c max_connections=300 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB" \
            >/dev/null || { tail -n 20 "$log" >&2; exit 1; }
    fi
    exists=$(as_pg "$bin/psql" -h "$dir" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'")
    if [[ $exists != 1 ]]; then
        as_pg "$bin/createdb" -h "$dir" -U postgres "$db"
    fi
    echo "$url"
    ;;
stop)
    bin=$(find_bin)
    if [[ -f $data/PG_VERSION ]] && running; then
        as_pg "$bin/pg_ctl" -D "$data" -w -t 60 stop -m fast >/dev/null
    fi
    ;;
url)
    echo "$url"
    ;;
*)
    usage
    ;;
esac
