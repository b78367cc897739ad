#!/usr/bin/env bash
# Benchmark: a Qdrant collection snapshot (N x 384-d `text` + 16-d `title`, HNSW-indexed, written
# by Qdrant Edge) from snapshot file to first query answered, drillbook vs Qdrant Edge alone; and
# `vector_recall` of 100 golden queries vs Qdrant Edge answering the same 100 queries alone.
# Side by side in one run, rounds alternating which goes first.
#
#   benches/qdrant_restore.sh                          # 100 000 points, 3 rounds, release build
#   POINTS=20000 ROUNDS=5 PROFILE=dev benches/qdrant_restore.sh
#   QDRANT_PYTHON=/opt/qe/bin/python                   # default /opt/drillbook-test/qdrant/bin/python
#
# "Qdrant Edge alone" (qdrant-edge-py, in one Python process): `tar -x` of the snapshot, Qdrant's
# segment restore of shard 0 (`EdgeShard.unpack_snapshot` handed an empty archive, as drillbook
# does), `EdgeShard.load`, one HNSW query. "drillbook": `drillbook run` of a runbook whose first
# check is `vector_recall` of that one query; measured from the report, from `locate` starting to
# that check's end. drillbook's own peak RSS (VmHWM of its process) and the engine child's are
# printed beside. The 100 queries are also timed the way the check runs them (each through the
# index, then Qdrant's exact search of the same restored data), for the ratio of like to like.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
POINTS="${POINTS:-100000}"
DIM=384
ROUNDS="${ROUNDS:-3}"
PROFILE="${PROFILE:-release}"
PY="${QDRANT_PYTHON:-/opt/drillbook-test/qdrant/bin/python}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/qdrant-$POINTS"
[[ -x "$PY" ]] || { echo "needs qdrant-edge-py in $PY (scripts/test-deps.sh)" >&2; exit 1; }

if [[ "$PROFILE" == release ]]; then cargo build --release --quiet -p drillbook; else cargo build --quiet -p drillbook; fi
BIN="${CARGO_TARGET_DIR:-$PWD/target}/$([[ "$PROFILE" == release ]] && echo release || echo debug)/drillbook"
mkdir -p "$WORK/backups"
chmod 755 "$WORK" "$(dirname "$WORK")"

SNAP="$WORK/backups/docs-1-2026-11-29-03-00-00.snapshot"
if [[ ! -f "$SNAP" ]]; then
  echo "building the source: $POINTS x $DIM-d with Qdrant Edge ..." >&2
  "$PY" runbooks/examples/qdrant/make-sample.py "$SNAP" "$WORK/queries.jsonl" "$POINTS" "$DIM" 0 100 >&2
  "$BIN" manifest --adapter qdrant --snapshot "$SNAP" --out "$WORK/truth.json" \
    --queries "$WORK/queries.jsonl" --vector text --k 10 >&2
  head -n 1 "$WORK/truth.golden.jsonl" > "$WORK/one.golden.jsonl"
fi
SNAP_MB=$(( $(stat -c %s "$SNAP") / 1048576 ))

cat > "$WORK/edge.py" <<'PY'
import json, os, sys, tarfile, time
import qdrant_edge as q
snap, work, queries = sys.argv[1], sys.argv[2], sys.argv[3]
qs = [json.loads(l)["vector"] for l in open(queries)]
t0 = time.monotonic()
with tarfile.open(snap) as t:
    # The `data` filter where this Python has it (3.11.4+; Debian 12's venv has 3.11.2).
    t.extractall(work, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
shard = os.path.join(work, "0")
empty = os.path.join(work, "empty.tar")
open(empty, "wb").write(bytes(1024))
q.EdgeShard.unpack_snapshot(empty, shard)
s = q.EdgeShard.load(shard)
def search(v, exact=False):
    params = q.SearchParams(exact=True) if exact else None
    return s.query(q.QueryRequest(limit=10, query=q.Query.Nearest(v, using="text"), params=params))
assert len(search(qs[0])) == 10
first = time.monotonic() - t0
t1 = time.monotonic()
for v in qs:
    search(v)
t2 = time.monotonic()
# The same work as drillbook's check: each query through the index, then Qdrant's exact search.
for v in qs:
    search(v, exact=True)
print(f"{first:.2f} {t2 - t1:.3f} {time.monotonic() - t1:.3f}")
PY

cat > "$WORK/bench.yaml" <<YAML
version: 1
name: bench-qdrant
owner: bench
asset: { name: bench, kind: vector-store }
source: { path: $WORK/backups/, match: "*.snapshot" }
restore: { adapter: qdrant }
verify:
  - name: first query
    vector_recall: { collection: docs, vector: text, queries: $WORK/one.golden.jsonl, k: 10, min_recall: 0.0 }
  - name: recall
    vector_recall: { collection: docs, vector: text, queries: $WORK/truth.golden.jsonl, k: 10, min_recall: 0.9 }
timeouts: { step: 1h, drill: 2h }
YAML

raw_round() {
  local dir="$WORK/raw"
  rm -rf "$dir" && mkdir -p "$dir"
  local said
  # Waits for the process to exit (a process substitution would not): its shard is closed then.
  said=$("$PY" "$WORK/edge.py" "$SNAP" "$dir" "$WORK/queries.jsonl")
  read -r raw_first raw_q100 raw_both <<< "$said"
  rm -rf "$dir"
}

drill_round() {
  local out="$WORK/report-$1.json"
  (cd "$WORK" && exec "$BIN" run bench.yaml --report-dir "$WORK/reports" --output json > "$out") &
  local pid=$! hwm=0 h ehwm=0 e child
  while h=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [[ -n "$h" ]]; do
    hwm=$h
    for child in $(pgrep -P "$pid" 2>/dev/null); do
      e=$(awk '/VmHWM/ {print $2}' "/proc/$child/status" 2>/dev/null || echo 0)
      ((e > ehwm)) && ehwm=$e
    done
    sleep 0.05
  done
  wait "$pid" || { echo "drill failed: $out" >&2; exit 1; }
  drill_rss=$(( hwm / 1024 ))
  engine_rss=$(( ehwm / 1024 ))
  local shards load
  read -r drill_first shards load recall_s < <(first_query "$out" restore.unpack-shards restore.load recall)
  parts="$shards+$load"
}

rows=()
first_ratios=()
recall_ratios=()
same_work_ratios=()
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then raw_round; drill_round "$r"; else drill_round "$r"; raw_round; fi
  f=$(python3 -c "print(f'{$drill_first / $raw_first:.3f}')")
  q=$(python3 -c "print(f'{$recall_s / $raw_q100:.2f}')")
  w=$(python3 -c "print(f'{$recall_s / $raw_both:.2f}')")
  first_ratios+=("$f")
  recall_ratios+=("$q")
  same_work_ratios+=("$w")
  rows+=("| $r | $SNAP_MB MiB | $raw_first s | $drill_first s (unpack-shards+load $parts s) | $f× | $raw_q100 s | $raw_both s | $recall_s s | $q× | $w× | $drill_rss MiB | $engine_rss MiB |")
done
echo
echo "| round | snapshot | Qdrant Edge alone: to first query | drillbook: to first query | ratio | Qdrant Edge alone: 100 queries (HNSW) | Qdrant Edge alone: 100 HNSW + 100 exact | drillbook vector_recall (100) | ratio to HNSW alone | ratio to the same work | drillbook peak RSS | engine child peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
median_spread "first query: " "${first_ratios[@]}"
median_spread "vector_recall to HNSW alone: " "${recall_ratios[@]}"
median_spread "vector_recall to the same work (HNSW + exact) in Qdrant Edge alone: " "${same_work_ratios[@]}"
