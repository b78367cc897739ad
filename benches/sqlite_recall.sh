#!/usr/bin/env bash
# Benchmark: `vector_recall` on a SQLite RAG store of 1 M chunks × 384-d f32 (~1.6 GB), side by
# side in one run with the same exact top-k done by numpy reading the same file (`vectors @ q`,
# `argpartition`), rounds alternating which goes first (issue 11).
#
#   benches/sqlite_recall.sh                         # 1 000 000 × 384-d, 100 queries, k = 10, 3 rounds
#   POINTS=100000 ROUNDS=5 benches/sqlite_recall.sh
#   PYTHON=/opt/venv/bin/python                      # any python with numpy (default: the Chroma venv
#                                                    # of scripts/test-deps.sh, which has it)
#
# "numpy": one process reads every row of the file (`sqlite3`), stacks the blobs into one float32
# matrix, computes cosine scores against the 100 queries as one product and takes each query's
# top 10 with `argpartition`. "drillbook": `drillbook run` of a runbook whose only check is that
# `vector_recall`; its time is the check's own (`duration_ms` in the report: it reads the same
# file, a page at a time), the drill's wall time (copy of the file into the drill folder and
# `PRAGMA integrity_check` included) is printed beside. Peak RSS of each process from wait4.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
POINTS="${POINTS:-1000000}"
DIM=384
QUERIES="${QUERIES:-100}"
K=10
ROUNDS="${ROUNDS:-3}"
PYTHON="${PYTHON:-/opt/drillbook-test/chroma/bin/python}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/sqlite-rag-$POINTS"
"$PYTHON" -c "import numpy" 2>/dev/null || { echo "needs numpy in $PYTHON (scripts/test-deps.sh installs chromadb, which has it)" >&2; exit 1; }
mkdir -p "$WORK/backups"

if [[ ! -f "$WORK/backups/rag.db" ]]; then
  echo "building the store: $POINTS × $DIM-d f32 unit vectors and $QUERIES golden queries ..." >&2
  "$PYTHON" - "$WORK/backups/rag.db" "$WORK/golden.jsonl" "$POINTS" "$DIM" "$QUERIES" "$K" <<'PY'
import json, sqlite3, sys, numpy as np
path, golden, n, dim, nq, k = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
rng = np.random.default_rng(11)
db = sqlite3.connect(path + ".tmp")
db.execute("create table chunks (id text primary key, doc_id text not null, embedding blob not null)")
picks = sorted(rng.choice(n, nq, replace=False))
queries = []
for start in range(0, n, 50_000):
    v = rng.standard_normal((min(50_000, n - start), dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for p in picks:
        if start <= p < start + len(v):
            q = v[p - start] + 0.3 * rng.standard_normal(dim, dtype=np.float32)
            queries.append(q / np.linalg.norm(q))
    db.executemany("insert into chunks values (?, ?, ?)",
                   ((f"c{start + i:07d}", f"d{(start + i) // 8:06d}", v[i].astype("<f4").tobytes()) for i in range(len(v))))
db.commit()
db.close()
import os
os.rename(path + ".tmp", path)
# The golden answers: the exact top-k by cosine, in float64 over the same float32 vectors, a
# block of rows at a time (a 4 GiB store does not fit in memory twice over).
db = sqlite3.connect(path)
Q = np.array(queries, dtype=np.float64)
best = [[] for _ in Q]  # per query: (score, id) of the best k so far
cur = db.execute("select id, embedding from chunks")
while rows := cur.fetchmany(200_000):
    ids = [r[0] for r in rows]
    V = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, dim).astype(np.float64)
    S = (V @ Q.T) / np.linalg.norm(V, axis=1)[:, None]
    for j in range(len(Q)):
        part = np.argpartition(-S[:, j], k)[:k]
        best[j] = sorted(best[j] + [(S[i, j], ids[i]) for i in part], key=lambda x: (-x[0], x[1]))[:k]
with open(golden, "w") as f:
    for j in range(len(Q)):
        f.write(json.dumps({"id": f"q{j + 1}", "vector": [float(x) for x in queries[j]], "expected": [i for _, i in best[j]]}) + "\n")
PY
fi

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"

cat > "$WORK/numpy_topk.py" <<'PY'
import json, sqlite3, sys, numpy as np
path, golden, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
qs = [json.loads(l) for l in open(golden)]
import time
t0 = time.perf_counter()
db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
rows = db.execute("select id, embedding from chunks").fetchall()
ids = [r[0] for r in rows]
vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
t1 = time.perf_counter()
q = np.array([x["vector"] for x in qs], dtype=np.float32)
scores = (vectors @ q.T) / np.linalg.norm(vectors, axis=1)[:, None] / np.linalg.norm(q, axis=1)[None, :]
recall = 0.0
for j, x in enumerate(qs):
    top = np.argpartition(-scores[:, j], k)[:k]
    recall += len(set(ids[i] for i in top) & set(x["expected"][:k])) / k
print(f"{recall / len(qs):.4f} {t1 - t0:.3f}")
PY

# runbook_head NAME: the part of both runbooks before their checks.
runbook_head() {
  cat <<YAML
version: 1
name: $1
owner: bench
asset: { name: rag-chunks, kind: vector-store }
source: { path: $WORK/backups/, pick: rag.db }
restore: { adapter: sqlite }
timeouts: { step: 60m, drill: 120m }
verify:
YAML
}

{ runbook_head sqlite-rag-bench; cat <<YAML; } > "$WORK/rag.yaml"
  - name: golden
    vector_recall: { table: chunks, column: embedding, id: id, queries: golden.jsonl, k: $K, min_recall: 0.95, encoding: f32le }
YAML

{ runbook_head sqlite-rag-bench-whole; cat <<YAML; } > "$WORK/whole.yaml"
  - name: counts
    row_counts: { manifest: manifest.json }
  - name: schema
    schema: { expected: manifest.json }
  - name: chunks identical
    table_checksum: { table: chunks, manifest: manifest.json }
  - name: embeddings well-formed
    vector_integrity: { table: chunks, column: embedding, dim: $DIM, encoding: f32le, min_norm: 0.99, max_norm: 1.01 }
  - name: golden
    vector_recall: { table: chunks, column: embedding, id: id, queries: golden.jsonl, k: $K, min_recall: 0.95, encoding: f32le }
YAML

export TMPDIR="$WORK/tmp"
mkdir -p "$TMPDIR"
"$PYTHON" - "$BIN" "$WORK" "$K" "$ROUNDS" "$PYTHON" "${WHOLE:-1}" <<'PY'
import json, os, statistics, sys, time
bin_, work, k, rounds, python, whole = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6] != "0"
def measured(argv, cwd):
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        fd = os.open(os.path.join(work, "out.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        err = os.open(os.path.join(work, "err.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(err, 2)
        os.execv(argv[0], argv)
    _, status, usage = os.wait4(pid, 0)
    took = time.perf_counter() - t
    out = open(os.path.join(work, "out.txt")).read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv} failed:\n{out[-2000:]}\n{open(os.path.join(work, 'err.txt')).read()[-2000:]}")
    return out, took, usage.ru_maxrss // 1024
db = os.path.join(work, "backups", "rag.db")
golden = os.path.join(work, "golden.jsonl")
res = {"numpy": [], "drillbook": []}
for r in range(rounds):
    order = ["numpy", "drillbook"] if r % 2 == 0 else ["drillbook", "numpy"]
    for v in order:
        if v == "numpy":
            out, took, rss = measured([python, os.path.join(work, "numpy_topk.py"), db, golden, k], work)
            recall, read = out.split()
            res[v].append((took, took, rss, float(recall), float(read)))
        else:
            out, took, rss = measured([bin_, "run", "rag.yaml", "--output", "json"], work)
            rep = json.loads(out)
            check = rep["checks"][0]
            assert check["status"] == "passed", check
            res[v].append((check["duration_ms"] / 1000, took, rss, check["observed"]))
    print(f"round {r + 1}: numpy {res['numpy'][-1][0]:.2f} s, drillbook vector_recall {res['drillbook'][-1][0]:.2f} s", file=sys.stderr)
print("| variant | exact top-k of 100 queries (median, spread) | of which reading the file into memory | whole process | peak RSS | recall@10 vs golden |")
print("| --- | --- | --- | --- | --- | --- |")
for v, label in (("numpy", "numpy (`vectors @ q`, `argpartition`)"), ("drillbook", "drillbook `vector_recall`")):
    xs = res[v]
    t = sorted(x[0] for x in xs)
    w = statistics.median(x[1] for x in xs)
    read = f"{statistics.median(x[4] for x in xs):.2f} s" if v == "numpy" else "(pages read while others are searched)"
    print(f"| {label} | {statistics.median(t):.2f} s ({t[0]:.2f}–{t[-1]:.2f}) | {read} | {w:.2f} s | {max(x[2] for x in xs)} MiB | {xs[-1][3]} |")
ratios = sorted(d[0] / n[0] for d, n in zip(res["drillbook"], res["numpy"]))
print(f"\ndrillbook / numpy: median {statistics.median(ratios):.2f}× (spread {ratios[0]:.2f}–{ratios[-1]:.2f}×) over {len(ratios)} rounds")
if not whole:
    sys.exit(0)
_, took, rss = measured([bin_, "manifest", "--adapter", "sqlite", "--url", f"sqlite://{db}", "--out", "manifest.json"], work)
size = os.path.getsize(db)
print(f"\nWhole drill of the {size / 2**30:.2f} GiB store ({size:,} bytes):\n")
print("| what | time | peak RSS |")
print("| --- | --- | --- |")
print(f"| `drillbook manifest --adapter sqlite` (counts, schema, table digests) | {took:.2f} s | {rss} MiB |")
out, took, rss = measured([bin_, "run", "whole.yaml", "--output", "json"], work)
rep = json.loads(out)
for s in rep["steps"]:
    print(f"| step `{s['name']}` | {s['duration_ms'] / 1000:.2f} s | |")
for c in rep["checks"]:
    print(f"| check `{c['kind']}` ({c['status']}) | {c['duration_ms'] / 1000:.2f} s | |")
print(f"| `drillbook run` (whole process, verdict {rep['verdict']}) | {took:.2f} s | {rss} MiB |")
PY

