#!/usr/bin/env bash
# Benchmark: `drillbook init` on the committed samples (quickstart: SQLite + files in a
# tar.zst; pgvector: a pg_dump custom archive restored into a scratch PostgreSQL 17 +
# pgvector), side by side with a drill of the runbook it wrote (the same restore, with the
# written checks instead of the capture), alternating round by round.
#
#   benches/init.sh                 # release build, 5 rounds
#   PROFILE=dev ROUNDS=3 benches/init.sh
#
# Prints a Markdown table: median wall time and spread of each variant, and the checks written.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"
PROFILE="${PROFILE:-release}"
PGVECTOR="${PGVECTOR:-/opt/drillbook-test/pgvector}"
[[ -x "$PGVECTOR/bin/pg_restore" ]] || { echo "needs PostgreSQL + pgvector at $PGVECTOR (scripts/test-deps.sh)" >&2; exit 1; }
if [[ $PROFILE == release ]]; then cargo build --release --quiet; BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"; else BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/drillbook"; fi
source benches/lib.sh
# Short: a scratch PostgreSQL puts its socket below TMPDIR (107 bytes at most).
WORK="$(mktemp -d /var/tmp/dbi.XXXXXX)"
chmod 711 "$WORK"
trap 'rm -rf "$WORK"' EXIT
cp -r runbooks/examples/quickstart/backups "$WORK/quickstart"
cp -r runbooks/examples/postgres-pgvector/backups "$WORK/pgvector"
export PATH="$PGVECTOR/bin:$PATH" TMPDIR="$WORK"

echo "| sample | init (median, spread) | drill of the written runbook | checks written |"
echo "| --- | --- | --- | --- |"
for sample in quickstart pgvector; do
  inits=() runs=()
  for ((r = 1; r <= ROUNDS; r++)); do
    rm -rf "$WORK/out-$sample"
    t0=$(now)
    (cd "$WORK" && "$BIN" init --source "$sample/" --name "$sample" --out "out-$sample" >"$WORK/init.log" 2>&1) || { cat "$WORK/init.log" >&2; exit 1; }
    t1=$(now)
    (cd "$WORK/out-$sample" && "$BIN" run "$sample.yaml" >"$WORK/run.log" 2>&1) || { cat "$WORK/run.log" >&2; exit 1; }
    t2=$(now)
    inits+=("$(echo "$t1 - $t0" | bc)") runs+=("$(echo "$t2 - $t1" | bc)")
  done
  checks=$(grep -c '^  - name:' "$WORK/out-$sample/$sample.yaml")
  python3 - "$sample" "$checks" "${#inits[@]}" "${inits[@]}" "${runs[@]}" <<'PY'
import statistics, sys
sample, checks, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
vals = [float(x) for x in sys.argv[4:]]
init, run = sorted(vals[:n]), sorted(vals[n:])
fmt = lambda v: f"{statistics.median(v):.2f} s ({v[0]:.2f}–{v[-1]:.2f})"
print(f"| {sample} | {fmt(init)} | {fmt(run)} | {checks} |")
PY
done
echo
echo "$ROUNDS rounds, $PROFILE build, $(nproc) cores; init and the drill alternate within each round."
