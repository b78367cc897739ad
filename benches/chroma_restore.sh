#!/usr/bin/env bash
# Benchmark: a Chroma backup (tar.zst of a persist folder, N x 384-d) from archive to first query
# answered, drillbook vs Chroma alone; and `vector_recall` of 100 golden queries vs Chroma
# answering the same 100 queries alone. Side by side in one run, rounds alternating which goes first.
#
#   benches/chroma_restore.sh                     # 100 000 x 384-d, 3 rounds
#   POINTS=20000 ROUNDS=5 benches/chroma_restore.sh
#   CHROMA_BIN=/opt/chroma/bin                    # default /opt/drillbook-test/chroma/bin
#
# "Chroma alone": zstd -dc | tar -x into a fresh folder, `chroma run` on it (as nobody when
# root, as drillbook does), heartbeat, one query. "drillbook": `drillbook run` of a runbook whose
# first check is the same query; measured from the report, from `locate` starting to that
# check's end (the drill then goes on to vector_recall and teardown). The peak RSS of drillbook's
# own process (VmHWM) is printed beside; Chroma's memory is its own process's. The 100 queries
# are also timed doing the check's work with Chroma alone: each query through Chroma, then every
# embedding read back with chromadb's client in pages of the check's size and the exact top-k of
# the 100 queries computed with numpy (Chroma has no exact search of its own), for the ratio of
# like to like.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
POINTS="${POINTS:-100000}"
DIM=384
ROUNDS="${ROUNDS:-3}"
BIN_DIR="${CHROMA_BIN:-/opt/drillbook-test/chroma/bin}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/chroma-$POINTS"
[[ -x "$BIN_DIR/chroma" ]] || { echo "needs chroma in $BIN_DIR (scripts/test-deps.sh, or pip install chromadb)" >&2; exit 1; }

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"
mkdir -p "$WORK/backups"
chmod 755 "$WORK" "$(dirname "$WORK")"
as_nobody=()
if [[ $EUID -eq 0 ]]; then as_nobody=(runuser -u nobody --); fi

ARCHIVE="$WORK/backups/chroma.tar.zst"
if [[ ! -f "$ARCHIVE" ]]; then
  echo "building the source: $POINTS x $DIM-d with chromadb ..." >&2
  rm -rf "$WORK/src" && mkdir -p "$WORK/src"
  ANONYMIZED_TELEMETRY=False "$BIN_DIR/python" - "$WORK/src/data" "$WORK/queries.jsonl" "$POINTS" "$DIM" <<'PY'
import sys, numpy as np, chromadb
path, queries, n, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(7)
centers = rng.normal(size=(256, dim)).astype(np.float32)
c = chromadb.PersistentClient(path=path).create_collection("docs", configuration={"hnsw": {"space": "cosine"}})
vecs = np.empty((n, dim), dtype=np.float32)
for s in range(0, n, 5000):
    e = min(n, s + 5000)
    v = centers[rng.integers(0, 256, e - s)] + rng.normal(scale=0.5, size=(e - s, dim)).astype(np.float32)
    vecs[s:e] = v
    c.add(ids=[f"p{i}" for i in range(s, e)], embeddings=v,
          documents=[f"chunk {i}" for i in range(s, e)], metadatas=[{"n": i} for i in range(s, e)])
with open(queries, "w") as out:
    for q, i in enumerate(rng.choice(n, 100, replace=False)):
        v = vecs[i] + rng.normal(scale=0.05, size=dim).astype(np.float32)
        out.write('{"id": "q%03d", "vector": [%s]}\n' % (q, ",".join("%.6f" % x for x in v)))
PY
  "$BIN" manifest --adapter chroma --path "$WORK/src/data" --bin-dir "$BIN_DIR" --out "$WORK/truth.json" \
    --queries "$WORK/queries.jsonl" --collection docs --k 10 >&2
  tar -C "$WORK/src/data" -cf - . | zstd -q -3 -T0 > "$ARCHIVE"
  rm -rf "$WORK/src"
fi
ARCHIVE_MB=$(( $(stat -c %s "$ARCHIVE") / 1048576 ))

# One query of the golden set, as a client would send it (the collection looked up by name).
cat > "$WORK/query.py" <<'PY'
import json, sys, time, urllib.request
base, queries, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
col = f"{base}/api/v2/tenants/default_tenant/databases/default_database/collections"
cid = json.load(urllib.request.urlopen(f"{col}/docs"))["id"]
qs = [json.loads(l)["vector"] for l in open(queries)][:count]
t = time.monotonic()
for v in qs:
    body = json.dumps({"query_embeddings": [v], "n_results": 10, "include": ["distances"]}).encode()
    req = urllib.request.Request(f"{col}/{cid}/query", body, {"content-type": "application/json"})
    assert len(json.load(urllib.request.urlopen(req))["ids"][0]) == 10
print(f"{time.monotonic() - t:.3f}")
PY
# The check's work with Chroma alone (see the head of this file); pages of 10^6 numbers, as the check's.
cat > "$WORK/same.py" <<'PY'
import json, sys, time
import numpy as np, chromadb
port, queries = int(sys.argv[1]), sys.argv[2]
c = chromadb.HttpClient(host="127.0.0.1", port=port).get_collection("docs")
qs = np.array([json.loads(l)["vector"] for l in open(queries)], dtype=np.float32)
k = 10
t = time.monotonic()
for v in qs:
    assert len(c.query(query_embeddings=[v.tolist()], n_results=k)["ids"][0]) == k
qn = qs / np.linalg.norm(qs, axis=1, keepdims=True)
page = 1_000_000 // qs.shape[1]
best_s = np.full((len(qs), 0), -np.inf, dtype=np.float32)
best_i = np.empty((len(qs), 0), dtype=object)
offset = 0
while True:
    g = c.get(include=["embeddings"], limit=page, offset=offset)
    if not g["ids"]:
        break
    e = np.asarray(g["embeddings"], dtype=np.float32)
    s = qn @ (e / np.linalg.norm(e, axis=1, keepdims=True)).T
    all_s = np.concatenate([best_s, s], axis=1)
    all_i = np.concatenate([best_i, np.tile(np.array(g["ids"], dtype=object), (len(qs), 1))], axis=1)
    top = np.argpartition(-all_s, min(k, all_s.shape[1] - 1), axis=1)[:, :k]
    best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    offset += len(g["ids"])
assert offset == c.count() and best_i.shape == (len(qs), k)
print(f"{time.monotonic() - t:.3f}")
PY
GOLDEN="$WORK/truth.golden.jsonl"
chmod 644 "$WORK/query.py" "$WORK/same.py" "$WORK/queries.jsonl" "$GOLDEN"

cat > "$WORK/bench.yaml" <<YAML
version: 1
name: bench-chroma
owner: bench
asset: { name: bench, kind: vector-store }
source: { path: $WORK/backups/ }
restore: { adapter: chroma, bin_dir: $BIN_DIR }
verify:
  - name: first query
    command: { run: [sh, -c, "/usr/bin/python3 $WORK/query.py \"\$DRILL_SCRATCH_URL\" $WORK/queries.jsonl 1"] }
  - name: recall
    vector_recall: { collection: docs, queries: $GOLDEN, k: 10, min_recall: 0.9 }
timeouts: { step: 1h, drill: 2h }
YAML

raw_round() {
  local dir="$WORK/raw" port
  rm -rf "$dir" && mkdir -p "$dir/data"
  port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  local t0; t0=$(now)
  zstd -dc "$ARCHIVE" | tar -xf - -C "$dir/data"
  [[ $EUID -eq 0 ]] && chown -R nobody "$dir"
  (cd "$dir" && ANONYMIZED_TELEMETRY=False "${as_nobody[@]}" "$BIN_DIR/chroma" run --path "$dir/data" \
    --host 127.0.0.1 --port "$port" >"$dir/log" 2>&1 &)
  until curl -sf "http://127.0.0.1:$port/api/v2/heartbeat" >/dev/null; do sleep 0.02; done
  python3 "$WORK/query.py" "http://127.0.0.1:$port" "$WORK/queries.jsonl" 1 >/dev/null
  raw_first=$(python3 -c "print(f'{$(now) - $t0:.2f}')")
  raw_q100=$(python3 "$WORK/query.py" "http://127.0.0.1:$port" "$WORK/queries.jsonl" 100)
  raw_same=$(ANONYMIZED_TELEMETRY=False "$BIN_DIR/python" "$WORK/same.py" "$port" "$WORK/queries.jsonl")
  pkill -f "chroma run --path $dir/data" || true
  sleep 1
  rm -rf "$dir"
}

drill_round() {
  local out="$WORK/report-$1.json"
  # drillbook's own peak (VmHWM of its process, read until it exits): GNU time's maxrss would
  # be the largest of it and its reaped children, i.e. the Chroma server's.
  (cd "$WORK" && exec "$BIN" run bench.yaml --report-dir "$WORK/reports" --output json > "$out") &
  local pid=$! hwm=0 h
  while h=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [[ -n "$h" ]]; do hwm=$h; sleep 0.05; done
  wait "$pid" || { echo "drill failed: $out" >&2; exit 1; }
  drill_rss=$(( hwm / 1024 ))
  read -r drill_first start recall_s < <(first_query "$out" restore.start recall)
}

rows=()
first_ratios=()
recall_ratios=()
same_work_ratios=()
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then raw_round; drill_round "$r"; else drill_round "$r"; raw_round; fi
  f=$(python3 -c "print(f'{$drill_first / $raw_first:.3f}')")
  q=$(python3 -c "print(f'{$recall_s / $raw_q100:.2f}')")
  w=$(python3 -c "print(f'{$recall_s / $raw_same:.2f}')")
  first_ratios+=("$f")
  recall_ratios+=("$q")
  same_work_ratios+=("$w")
  rows+=("| $r | $ARCHIVE_MB MiB | $raw_first s | $drill_first s (restore.start $start s) | $f× | $raw_q100 s | $raw_same s | $recall_s s | $q× | $w× | $drill_rss MiB |")
done
echo
echo "| round | archive | Chroma alone: to first query | drillbook: to first query | ratio | Chroma alone: 100 queries | Chroma alone + numpy: the check's work | drillbook vector_recall (100) | ratio to the queries alone | ratio to the same work | drillbook peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
median_spread "first query: " "${first_ratios[@]}"
median_spread "vector_recall to the queries alone: " "${recall_ratios[@]}"
median_spread "vector_recall to the same work with Chroma alone (+ numpy): " "${same_work_ratios[@]}"
