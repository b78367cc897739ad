#!/usr/bin/env bash
# Benchmark (issue 14): a whole-stack drill of three stores vs the three single-store drills run
# one after the other, in one run, rounds alternating which goes first; then `references` over
# 1 M ids (time and peak RSS) beside the same anti-join done by the plain `sqlite3`.
#
#   benches/stack.sh                        # 3 rounds
#   ROUNDS=5 PG_ROWS=60000 benches/stack.sh
#
# The stack: a pgvector custom dump (PG_ROWS x 384-d with an HNSW index), a SQLite RAG store
# (SQLITE_ROWS chunks x 384-d f32 BLOBs) and a 1 GiB Markdown corpus (tar.zst), each with its
# own backup. Every drill is `drillbook run` from the shell, timed by its wall clock.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
ROUNDS="${ROUNDS:-3}"
PG_ROWS="${PG_ROWS:-30000}"
SQLITE_ROWS="${SQLITE_ROWS:-200000}"
CORPUS_MIB="${CORPUS_MIB:-1024}"
IDS="${IDS:-1000000}"
PG_BIN="$(readlink -f "${PG_BIN:-/opt/drillbook-test/pgvector/bin}")"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/stack"
[[ -x "$PG_BIN/pg_dump" ]] || { echo "needs PostgreSQL with pgvector at PG_BIN (scripts/test-deps.sh installs one)" >&2; exit 1; }
for t in python3 sqlite3 zstd /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "needs $t (apt install sqlite3 zstd time)" >&2; exit 1; }
done

cargo build --release --quiet -p drillbook
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"
mkdir -p "$WORK"/backups/{pg,sqlite,corpus,docs,chunks}
chmod 755 "$WORK" "$(dirname "$WORK")"

# --- the backups, made once ---------------------------------------------------------------
DUMP="$WORK/backups/pg/items.dump"
if [[ ! -f "$DUMP" ]]; then
  echo "building the pgvector dump: $PG_ROWS x 384-d with an HNSW index ..." >&2
  pg_cluster_start "$WORK/src" 54331 maintenance_work_mem=1GB
  psql=("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 54331 -U postgres)
  "${psql[@]}" -d postgres -c "create database items"
  "${psql[@]}" -d items -c "create extension vector;
    create table items (id bigint primary key, doc jsonb not null, embedding vector(384) not null);
    insert into items select i, jsonb_build_object('title', 'item ' || i),
      (select array_agg(random()::real) from generate_series(1, 384) where i > 0)::vector
      from generate_series(1, $PG_ROWS) i;
    create index on items using hnsw (embedding vector_cosine_ops);"
  "$PG_BIN/pg_dump" -h 127.0.0.1 -p 54331 -U postgres -Fc -Z0 -f "$DUMP" items
  pg_cluster_stop "$WORK/src"
fi
if [[ ! -f "$WORK/backups/sqlite/rag.sqlite" ]]; then
  echo "building the SQLite store: $SQLITE_ROWS x 384-d ..." >&2
  python3 - "$WORK/backups/sqlite/rag.sqlite" "$SQLITE_ROWS" <<'PY'
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("create table chunks (id integer primary key, document_id text not null, embedding blob not null)")
n, blob = int(sys.argv[2]), os.urandom(384 * 4 * 64)
db.executemany("insert into chunks values (?, ?, ?)",
               ((i, f"doc-{i // 8:07d}", blob[(i % 64) * 1536:(i % 64 + 1) * 1536]) for i in range(n)))
db.commit()
PY
fi
if [[ ! -f "$WORK/backups/corpus/corpus.tar.zst" ]]; then
  echo "building the corpus: $CORPUS_MIB MiB of Markdown ..." >&2
  python3 - "$WORK/corpus-src" "$CORPUS_MIB" <<'PY'
import os, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
words = [("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))) for _ in range(5000)]
pool = " ".join(rng.choice(words) for _ in range(1_500_000)).encode()  # ~9 MiB of words
for i in range(mib * 4):  # 256 KiB each, from a different place of the pool
    os.makedirs(f"{root}/docs/{i // 256:03d}", exist_ok=True)
    at = rng.randrange(len(pool) - 256 * 1024)
    open(f"{root}/docs/{i // 256:03d}/doc-{i:07d}.md", "wb").write(pool[at:at + 256 * 1024])
PY
  tar -C "$WORK/corpus-src" -cf - . | zstd -q -T0 -3 -o "$WORK/backups/corpus/corpus.tar.zst"
  rm -rf "$WORK/corpus-src"
fi

# --- the runbooks ---------------------------------------------------------------------------
PG_RESTORE="    adapter: postgres
    bin_dir: $PG_BIN"
SQLITE_RESTORE="    adapter: sqlite"
FILES_RESTORE="    adapter: files"
PG_CHECK="    sql: select count(*) from items
    expect: \"== $PG_ROWS\""
SQLITE_CHECK="    sql: select count(*) from chunks
    expect: \"== $SQLITE_ROWS\""
FILES_CHECK="    command: { run: [/bin/sh, -c, 'test -s \"\$DRILL_SCRATCH_DIR/docs/000/doc-0000000.md\"'] }"
single() { # name restore-options source-path check
  cat > "$WORK/$1.yaml" <<YAML
version: 1
name: bench-$1
owner: bench
asset: { name: bench-$1, kind: vector-store }
source: { path: $3, max_expansion: 100 }
restore:
${2//    /  }
verify:
  - name: restored
$4
timeouts: { step: 1h, drill: 2h }
YAML
}
single pg "$PG_RESTORE" "$WORK/backups/pg/" "$PG_CHECK"
single sqlite "$SQLITE_RESTORE" "$WORK/backups/sqlite/" "$SQLITE_CHECK"
single files "$FILES_RESTORE" "$WORK/backups/corpus/" "$FILES_CHECK"
cat > "$WORK/stack.yaml" <<YAML
version: 1
name: bench-stack
owner: bench
asset: { name: bench-stack, kind: vector-store }
restores:
  - name: pg
$PG_RESTORE
    source: { path: $WORK/backups/pg/ }
  - name: sqlite
$SQLITE_RESTORE
    source: { path: $WORK/backups/sqlite/ }
  - name: files
$FILES_RESTORE
    source: { path: $WORK/backups/corpus/, max_expansion: 100 }
verify:
  - name: pg restored
    on: pg
$PG_CHECK
  - name: sqlite restored
    on: sqlite
$SQLITE_CHECK
  - name: files restored
    on: files
$FILES_CHECK
timeouts: { step: 1h, drill: 2h }
YAML

# busy: the machine's busy CPU seconds so far (all processes: the scratch servers are not
# drillbook's children), from /proc/stat.
busy() { awk '/^cpu / {print ($2 + $3 + $4 + $7 + $8) / 100}' /proc/stat; }

# drill NAME: runs NAME.yaml, prints its wall time and the CPU seconds the machine spent
# meanwhile; fails loudly.
drill() {
  local t0 t1 c0 c1 out="$WORK/report-$1.json"
  t0=$(now); c0=$(busy)
  (cd "$WORK" && "$BIN" run "$1.yaml" --report-dir "$WORK/reports" --output json > "$out") \
    || { echo "drill $1 failed: $out" >&2; exit 1; }
  t1=$(now); c1=$(busy)
  python3 -c "print(f'{$t1 - $t0:.2f} {$c1 - $c0:.1f}')"
}

rows=()
to_slowest=()
to_sum=()
to_floor=()
CORES=$(nproc)
for ((r = 1; r <= ROUNDS; r++)); do
  # Odd rounds: the stack first, then the singles; even rounds the other way round.
  if ((r % 2)); then
    read -r stack stack_cpu < <(drill stack); read -r pg pg_cpu < <(drill pg)
    read -r sq sq_cpu < <(drill sqlite); read -r fi_ fi_cpu < <(drill files)
  else
    read -r pg pg_cpu < <(drill pg); read -r sq sq_cpu < <(drill sqlite)
    read -r fi_ fi_cpu < <(drill files); read -r stack stack_cpu < <(drill stack)
  fi
  # The floor: no schedule of the three on CORES cores beats the slowest alone, nor their
  # CPU seconds spread over every core.
  read -r slowest sum floor ratio_slowest ratio_sum ratio_floor < <(python3 -c "
s = [$pg, $sq, $fi_]; m, t = max(s), sum(s); f = max(m, ($pg_cpu + $sq_cpu + $fi_cpu) / $CORES)
print(f'{m:.2f} {t:.2f} {f:.2f} {$stack / m:.3f} {$stack / t:.3f} {$stack / f:.3f}')")
  to_slowest+=("$ratio_slowest")
  to_sum+=("$ratio_sum")
  to_floor+=("$ratio_floor")
  rows+=("| $r | $pg s ($pg_cpu) | $sq s ($sq_cpu) | $fi_ s ($fi_cpu) | $sum s | $floor s | $stack s ($stack_cpu) | ${ratio_slowest}× | ${ratio_sum}× | ${ratio_floor}× |")
done
echo
echo "Wall time (CPU seconds of the whole machine meanwhile), $CORES cores:"
echo
echo "| round | pgvector ($PG_ROWS × 384, HNSW) | SQLite ($SQLITE_ROWS × 384) | corpus ($CORPUS_MIB MiB) | the three one after the other | floor on $CORES cores | the stack drill | stack / slowest | stack / sum | stack / floor |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
median_spread "stack / slowest single " "${to_slowest[@]}"
median_spread "stack / sum of singles " "${to_sum[@]}"
median_spread "stack / CPU floor " "${to_floor[@]}"

# --- references over 1 M ids ------------------------------------------------------------------
if [[ ! -f "$WORK/backups/docs/docs.sqlite" ]]; then
  echo "building $IDS documents and $IDS chunks pointing at them ..." >&2
  python3 - "$WORK/backups" "$IDS" <<'PY'
import random, sqlite3, sys
root, n = sys.argv[1], int(sys.argv[2])
ids = [f"doc-{i:08d}" for i in range(n)]
d = sqlite3.connect(f"{root}/docs/docs.sqlite")
d.execute("create table documents (id text primary key, title text)")
d.executemany("insert into documents values (?, ?)", ((i, "t") for i in ids))
d.commit()
random.Random(1).shuffle(ids)
c = sqlite3.connect(f"{root}/chunks/chunks.sqlite")
c.execute("create table chunks (id integer primary key, document_id text not null)")
c.executemany("insert into chunks values (?, ?)", enumerate(ids))
c.commit()
PY
fi
refs_runbook() { # name check
  cat > "$WORK/$1.yaml" <<YAML
version: 1
name: bench-$1
owner: bench
asset: { name: bench-refs, kind: document-store }
restores:
  - name: docs
    adapter: sqlite
    source: { path: $WORK/backups/docs/ }
  - name: chunks
    adapter: sqlite
    source: { path: $WORK/backups/chunks/ }
verify:
  - name: the sets
$2
YAML
}
refs_runbook refs "    references:
      from: { on: chunks, sql: select document_id from chunks }
      to: { on: docs, sql: select id from documents }"
refs_runbook counts "    same_count:
      a: { on: chunks, sql: select document_id from chunks }
      b: { on: docs, sql: select id from documents }"

# rss NAME: the drill's peak RSS in MiB and the check's duration in seconds.
rss() {
  local out="$WORK/report-$1.json" kib
  kib=$( { (cd "$WORK" && /usr/bin/time -f '%M' "$BIN" run "$1.yaml" --report-dir "$WORK/reports" --output json > "$out") ; } 2>&1 | tail -1)
  python3 - "$out" "$kib" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["verdict"] == "passed", r["failure_reasons"]
print(f'{int(sys.argv[2]) / 1024:.0f} {r["checks"][0]["duration_ms"] / 1000:.2f}')
PY
}
plain() {
  local t0 t1
  t0=$(now)
  sqlite3 "$WORK/backups/chunks/chunks.sqlite" "attach '$WORK/backups/docs/docs.sqlite' as d;
    select count(*) from chunks where document_id not in (select id from d.documents);" > /dev/null
  t1=$(now)
  python3 -c "print(f'{$t1 - $t0:.2f}')"
}
rrows=()
ratios=()
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then
    read -r refs_mib refs_s < <(rss refs); read -r counts_mib counts_s < <(rss counts); sql_s=$(plain)
  else
    sql_s=$(plain); read -r counts_mib counts_s < <(rss counts); read -r refs_mib refs_s < <(rss refs)
  fi
  ratio=$(python3 -c "print(f'{$refs_s / $sql_s:.3f}')")
  ratios+=("$ratio")
  rrows+=("| $r | $refs_s s | $refs_mib MiB | $counts_s s | $counts_mib MiB | $sql_s s | ${ratio}× |")
done
echo
echo "| round | \`references\` ($IDS ids) | drill peak RSS | \`same_count\` (streams only) | its peak RSS | plain \`sqlite3\` anti-join (attached, indexed) | references / sqlite3 |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rrows[@]}"
median_spread "references / sqlite3 " "${ratios[@]}"
