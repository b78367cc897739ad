#!/usr/bin/env bash
# Benchmark: restoring a pgvector custom-format dump (>= 500 MB, HNSW index) with drillbook's
# restore steps vs raw `pg_restore -j JOBS` into a fresh database, side by side in one run, on
# clusters with the same settings (drillbook's throwaway-restore defaults for this machine,
# passed explicitly to both).
#
#   benches/pg_restore.sh                    # 125k x 384-d vectors (~530 MB dump), 1 round
#   ROWS=250000 ROUNDS=2 benches/pg_restore.sh
#
# Prints a Markdown table: raw pg_restore wall time, drillbook's `restore` step (and its
# restore.data / restore.post-data parts), the ratio, and the share of post-data.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
ROWS="${ROWS:-125000}"
DIM="${DIM:-384}"
JOBS="${JOBS:-2}"
ROUNDS="${ROUNDS:-1}"
PG_BIN="$(readlink -f "${PG_BIN:-/opt/drillbook-test/pgvector/bin}")"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/pg-$ROWS-$DIM"
[[ -x "$PG_BIN/pg_restore" ]] || { echo "needs PostgreSQL with pgvector at PG_BIN (scripts/test-deps.sh installs one)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 1; }

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"
mkdir -p "$WORK/backups"
chmod 755 "$WORK" "$(dirname "$WORK")"

mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 8 ))
((mem_mb > 2048)) && mem_mb=2048
cores=$(nproc); ((cores > 8)) && cores=8
SETTINGS=(fsync=off synchronous_commit=off full_page_writes=off wal_level=minimal max_wal_senders=0
  archive_mode=off checkpoint_timeout=1h max_wal_size=16GB autovacuum=off shared_buffers=256MB work_mem=64MB
  maintenance_work_mem=${mem_mb}MB max_parallel_maintenance_workers=$cores)

DUMP="$WORK/backups/items.dump"
if [[ ! -f "$DUMP" ]]; then
  echo "building the source: $ROWS x $DIM-d vectors with an HNSW index ..." >&2
  pg_cluster_start "$WORK/src" 54321 "${SETTINGS[@]}"
  psql=("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 54321 -U postgres)
  "${psql[@]}" -d postgres -c "create database items"
  "${psql[@]}" -d items -c "create extension vector;
    create table items (id bigint primary key, doc jsonb not null, embedding vector($DIM) not null);
    insert into items select i, jsonb_build_object('title', 'item ' || i),
      (select array_agg(random()::real) from generate_series(1, $DIM) where i > 0)::vector
      from generate_series(1, $ROWS) i;
    create index items_embedding_hnsw on items using hnsw (embedding vector_cosine_ops);"
  # -Z0: the dump is compressed by the storage pipeline (zstd), as in production.
  "$PG_BIN/pg_dump" -h 127.0.0.1 -p 54321 -U postgres -Fc -Z0 -f "$DUMP" items
  pg_cluster_stop "$WORK/src"
fi
DUMP_MB=$(( $(stat -c %s "$DUMP") / 1048576 ))

yaml_settings=""
for s in "${SETTINGS[@]}"; do yaml_settings+="${s%%=*}: \"${s#*=}\", "; done
cat > "$WORK/bench.yaml" <<YAML
version: 1
name: bench-pg-restore
owner: bench
asset: { name: bench, kind: vector-store }
source: { path: $WORK/backups/, pick: items.dump }
restore:
  adapter: postgres
  bin_dir: $PG_BIN
  jobs: $JOBS
  settings: { ${yaml_settings%, } }
verify:
  - name: rows
    sql: select count(*) from items
    expect: "== $ROWS"
timeouts: { step: 2h, drill: 3h }
YAML

raw_round() {
  pg_cluster_start "$WORK/raw" 54322 "${SETTINGS[@]}"
  "$PG_BIN/createdb" -h 127.0.0.1 -p 54322 -U postgres items
  local t0 t1
  t0=$(now)
  "$PG_BIN/pg_restore" -h 127.0.0.1 -p 54322 -U postgres --no-owner --no-privileges --exit-on-error -j "$JOBS" -d items "$DUMP"
  t1=$(now)
  pg_cluster_stop "$WORK/raw"
  raw=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
}

drill_round() {
  local out="$WORK/report-$1.json"
  (cd "$WORK" && "$BIN" run bench.yaml --report-dir "$WORK/reports" --output json > "$out") || { echo "drill failed: $out" >&2; exit 1; }
  read -r restore data post < <(python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = {x["name"]: x["duration_ms"] / 1000 for x in r["steps"]}
print(f'{s["restore"]:.1f} {s["restore.data"]:.1f} {s["restore.post-data"]:.1f}')
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
  share=$(python3 -c "print(f'{100 * $post / $restore:.0f} %')")
  rows+=("| $r | $DUMP_MB MiB | $raw s | $restore s | $data s | $post s | $ratio× | $share |")
done
echo
echo "| round | dump | raw \`pg_restore -j $JOBS\` | drillbook \`restore\` | restore.data | restore.post-data | ratio | post-data share |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
echo "median ratio: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')×"
