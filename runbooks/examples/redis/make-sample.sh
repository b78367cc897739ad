#!/usr/bin/env bash
# Rebuilds the sample behind runbooks/examples/redis.yaml with the real tools: a throwaway
# redis-server (Debian's Redis 7.0) on a unix socket holding an AI platform's session and queue
# data (sessions with an expiry, per-user hashes, a job queue, a rate-limit sorted set, an event
# stream, 2 000 cached embeddings-lookup keys), then
#   - backups/sessions-<date>.rdb.gz (+ .sha256): `SAVE` + gzip, as a nightly job would;
#   - truth/sessions.json: `drillbook manifest --adapter redis` (counts per database and
#     pattern, DEBUG DIGEST, 5 sampled keys per database).
# Usage: make-sample.sh [DRILLBOOK]   (default: target/debug/drillbook)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
drillbook="${1:-$here/../../../target/debug/drillbook}"
work="$(mktemp -d /tmp/drillbook-sample.XXXXXX)"
sock="$work/redis.sock"
redis-server --port 0 --unixsocket "$sock" --dir "$work" --save "" --appendonly no \
  --enable-debug-command local --daemonize yes --logfile "$work/log" --pidfile "$work/pid"
cleanup() { redis-cli -s "$sock" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
until redis-cli -s "$sock" ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
cli() { redis-cli -s "$sock" "$@" >/dev/null; }
for i in $(seq 1 200); do
  # An absolute expiry far ahead, so the committed sample keeps its sessions when restored later.
  cli SET "session:$i" "{\"user\":$i,\"model\":\"all-MiniLM-L6-v2\"}" EXAT 4102444800
  cli HSET "user:$i" name "user $i" lang "$([ $((i % 4)) -eq 0 ] && echo de || echo en)" plan pro
done
cli RPUSH queue:embed doc-1 doc-2 doc-3 doc-4 doc-5
cli ZADD ratelimit 10 user:1 20 user:2 30 user:3
cli XADD events '*' kind reindex collection docs
cli DEBUG POPULATE 2000 cache:emb: 64
cli -n 1 SET feature:rerank on
date=2026-11-29
mkdir -p "$here/backups" "$here/truth"
"$drillbook" manifest --adapter redis --url "redis+unix://$sock" --out "$here/truth/sessions.json" \
  --pattern 'session:*' --pattern 'user:*' --pattern 'cache:emb:*' --sample 5
cli SAVE
gzip -9n < "$work/dump.rdb" > "$here/backups/sessions-$date.rdb.gz"
(cd "$here/backups" && sha256sum "sessions-$date.rdb.gz" > "sessions-$date.rdb.gz.sha256")
echo "sample written to $here (backups/, truth/)"
