#!/usr/bin/env bash
# Benchmark: a large RDB restored by drillbook (`restore` step: redis-check-rdb beside the load,
# redis-server until `loading:0`) vs `redis-server` loading the same file alone, side by side in
# one run, rounds alternating which goes first.
#
#   benches/redis_load.sh                      # 8M keys x 100-byte values (~1 GB RDB), 3 rounds
#   KEYS=2000000 ROUNDS=5 benches/redis_load.sh
#
# Prints a Markdown table: the raw load, drillbook's restore step and its parts, the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
KEYS="${KEYS:-8000000}"
SIZE="${SIZE:-100}"
ROUNDS="${ROUNDS:-3}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/redis-$KEYS-$SIZE"
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"
mkdir -p "$WORK/backups"
chmod 755 "$WORK" "$(dirname "$WORK")"
as_redis=()
if [[ $EUID -eq 0 ]]; then as_redis=(runuser -u redis --); fi

# A redis-server in $1 loading $1/dump.rdb (if any); waits until loaded; prints the seconds taken.
serve() {
  local dir="$1"; shift
  local t0; t0=$(now)
  (cd "$dir" && "${as_redis[@]}" redis-server --port 0 --unixsocket "$dir/s.sock" --unixsocketperm 700 --dir "$dir" \
    --dbfilename dump.rdb --save "" --appendonly no --daemonize yes --logfile "$dir/log" "$@")
  until [[ -S "$dir/s.sock" ]] && redis-cli -s "$dir/s.sock" info persistence 2>/dev/null | grep -q '^loading:0'; do sleep 0.02; done
  python3 -c "print(f'{$(now) - $t0:.2f}')"
}
stop() { redis-cli -s "$1/s.sock" shutdown nosave >/dev/null 2>&1 || true; }

RDB="$WORK/backups/dump.rdb"
if [[ ! -f "$RDB" ]]; then
  echo "building the source: $KEYS keys x $SIZE-byte values ..." >&2
  rm -rf "$WORK/src" && mkdir -p "$WORK/src" && chown -R "${as_redis:+redis}" "$WORK/src" 2>/dev/null || true
  serve "$WORK/src" --enable-debug-command local >/dev/null
  redis-cli -s "$WORK/src/s.sock" debug populate "$KEYS" key: "$SIZE" >/dev/null
  # Uncompressed, so the file is as large as the data (a padded value compresses to nothing).
  redis-cli -s "$WORK/src/s.sock" config set rdbcompression no >/dev/null
  redis-cli -s "$WORK/src/s.sock" save >/dev/null
  stop "$WORK/src"
  mv "$WORK/src/dump.rdb" "$RDB"
  rm -rf "$WORK/src"
fi
RDB_MB=$(( $(stat -c %s "$RDB") / 1048576 ))

cat > "$WORK/bench.yaml" <<YAML
version: 1
name: bench-redis-load
owner: bench
asset: { name: bench, kind: cache }
source: { path: $WORK/backups/, pick: dump.rdb }
restore: { adapter: redis }
verify:
  - name: keys
    keys: { expect: "== $KEYS" }
timeouts: { step: 1h, drill: 2h }
YAML

raw_round() {
  rm -rf "$WORK/raw" && mkdir -p "$WORK/raw"
  ln "$RDB" "$WORK/raw/dump.rdb"
  [[ $EUID -eq 0 ]] && chown -R redis "$WORK/raw"
  raw=$(serve "$WORK/raw")
  stop "$WORK/raw"
  sleep 0.5
  rm -rf "$WORK/raw"
}

drill_round() {
  local out="$WORK/report-$1.json"
  (cd "$WORK" && "$BIN" run bench.yaml --report-dir "$WORK/reports" --output json > "$out") || { echo "drill failed: $out" >&2; exit 1; }
  read -r restore check load < <(python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = {x["name"]: x["duration_ms"] / 1000 for x in r["steps"]}
print(f'{s["restore"]:.2f} {s["restore.integrity"]:.2f} {s["restore.load"]:.2f}')
PY
)
}

rows=()
ratios=()
for ((r = 1; r <= ROUNDS; r++)); do
  # Alternate which goes first, so that neither always inherits the other's page cache.
  if ((r % 2)); then raw_round; drill_round "$r"; else drill_round "$r"; raw_round; fi
  ratio=$(python3 -c "print(f'{$restore / $raw:.3f}')")
  ratios+=("$ratio")
  rows+=("| $r | $RDB_MB MiB | $raw s | $restore s | $check s | $load s | $ratio× |")
done
echo
echo "| round | RDB | redis-server alone | drillbook restore | restore.integrity | restore.load | ratio |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
median_spread "" "${ratios[@]}"
