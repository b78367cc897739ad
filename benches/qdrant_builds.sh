#!/usr/bin/env bash
# Benchmark: several drillbook builds side by side on the Qdrant drill of benches/qdrant_restore.sh
# (run that first: it builds the snapshot and the runbook), with Qdrant Edge alone beside them;
# the order is rotated each round. Each DIR holds a `drillbook` and its `drillbook-qdrant-engine`.
#
#   ROUNDS=8 benches/qdrant_builds.sh target/rel/ab/old target/rel/ab/new
#
# Prints each round's time to first query (as qdrant_restore.sh measures it) and the report's
# `unpack` and `restore.unpack-shards` parts, then per build the median ratio to Qdrant Edge alone
# in the same round and its spread.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
POINTS="${POINTS:-100000}"
ROUNDS="${ROUNDS:-6}"
PY="${QDRANT_PYTHON:-/opt/drillbook-test/qdrant/bin/python}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/qdrant-$POINTS"
SNAP="$WORK/backups/docs-1-2026-11-29-03-00-00.snapshot"
[[ -f "$WORK/bench.yaml" && -f "$WORK/edge.py" ]] || { echo "run benches/qdrant_restore.sh first" >&2; exit 1; }
(($# > 0)) || { echo "usage: $0 BUILD_DIR..." >&2; exit 2; }
builds=()
for d in "$@"; do builds+=("$(cd "$d" && pwd)"); done
variants=(edge "${builds[@]}")
run() {
  if [[ $1 == edge ]]; then
    rm -rf "$WORK/raw" && mkdir -p "$WORK/raw"
    local said
    said=$("$PY" "$WORK/edge.py" "$SNAP" "$WORK/raw" "$WORK/queries.jsonl")
    rm -rf "$WORK/raw"
    echo "edge ${said%% *} - -"
  else
    (cd "$WORK" && exec "$1/drillbook" run bench.yaml --report-dir "$WORK/reports" --output json > "$WORK/builds.json")
    echo "$1 $(first_query "$WORK/builds.json" unpack restore.unpack-shards)"
  fi
}
# One unmeasured pass: each build's program pages are read once before the rounds.
for v in "${variants[@]}"; do run "$v" > /dev/null; done
out="$WORK/builds.txt"
: > "$out"
for ((r = 0; r < ROUNDS; r++)); do
  for ((i = 0; i < ${#variants[@]}; i++)); do
    run "${variants[$(((i + r) % ${#variants[@]}))]}" | sed "s/^/$((r + 1)) /" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import collections, statistics, sys
rounds = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, who, first, unpack, shards = line.split()
    rounds[r][who] = (float(first), unpack, shards)
print("\n| build | to first query (median) | ratio to Qdrant Edge alone (median, spread) | unpack (median) | restore.unpack-shards (median) |")
print("| --- | --- | --- | --- | --- |")
edge = statistics.median(r["edge"][0] for r in rounds.values())
print(f"| Qdrant Edge alone | {edge:.3f} s | | | |")
for who in next(iter(rounds.values())):
    if who == "edge":
        continue
    ratios = sorted(r[who][0] / r["edge"][0] for r in rounds.values())
    med = lambda i: statistics.median(float(r[who][i]) for r in rounds.values())
    print(f"| {who.rsplit('/', 1)[-1]} | {med(0):.3f} s | {statistics.median(ratios):.3f}× ({ratios[0]:.3f}–{ratios[-1]:.3f}×) | {med(1):.3f} s | {med(2):.3f} s |")
PY
