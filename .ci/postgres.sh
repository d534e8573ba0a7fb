#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the search tests.
#
#   .ci/postgres.sh start [DIR]   initdb into DIR (default: a new /tmp/striate-pg.XXXXXX), start the server on
#                                 127.0.0.1 at a free port, create database "striate"; prints its URL on stdout:
#                                 postgresql://postgres@127.0.0.1:PORT/striate   (trust auth, loopback only)
#   .ci/postgres.sh stop DIR      stop that server and delete DIR
#
# Needs Debian's `postgresql` package (initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH). As root,
# the server runs as the `postgres` user (initdb refuses root). Logs: DIR/initdb.log, DIR/server.log.
set -euo pipefail

bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return; fi
  echo "postgres.sh: no initdb found; install Debian's postgresql package (apt-get install -y postgresql)" >&2
  exit 1
}

as_owner() {  # run a server command as the cluster's owner
  if [[ $(id -u) -eq 0 ]]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "postgres.sh: running as root but there is no 'postgres' user to own the cluster" >&2
      exit 1
    fi
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd=${1:-}
case "$cmd" in
  start)
    BIN=$(bin_dir)
    DIR=${2:-$(mktemp -d /tmp/striate-pg.XXXXXX)}
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$DIR"; chmod 700 "$DIR"; fi
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1 \
      || { echo "postgres.sh: initdb failed (see $DIR/initdb.log):" >&2; tail -n 5 "$DIR/initdb.log" >&2; exit 1; }
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
      -o "-h 127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=50" start >/dev/null \
      || { echo "postgres.sh: the server did not start (see $DIR/server.log):" >&2; tail -n 5 "$DIR/server.log" >&2; exit 1; }
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres striate
    echo "postgresql://postgres@127.0.0.1:$PORT/striate"
    ;;
  stop)
    DIR=${2:?usage: postgres.sh stop DIR}
    BIN=$(bin_dir)
    if [[ -d "$DIR/data" ]]; then as_owner "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$DIR"
    ;;
  *)
    echo "usage: $0 start [DIR] | stop DIR" >&2
    exit 2
    ;;
esac
