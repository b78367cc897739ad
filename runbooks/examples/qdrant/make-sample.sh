#!/usr/bin/env bash
# Rebuilds the sample behind runbooks/examples/qdrant.yaml with the real engine: Qdrant Edge
# (PyPI qdrant-edge-py) writes a RAG collection's shard (make-sample.py: `docs`, 600 chunks with
# a 64-d cosine `text` vector and a 16-d dot `title` vector, payload, HNSW built by Edge's
# optimizer), packed in a Qdrant server's collection-snapshot layout, then
#   - truth/qdrant.json + truth/qdrant.golden.jsonl: `drillbook manifest --adapter qdrant
#     --snapshot` (points, vectors, payload schema, point digest; exact answers to 20 golden
#     queries by Qdrant's exact search);
#   - backups/docs-1-2026-11-29-03-00-00.snapshot.zst (+ .sha256): the snapshot as Qdrant names
#     it (`<collection>-<peer>-<time>.snapshot`), compressed by the nightly job.
# Usage: make-sample.sh [DRILLBOOK]   (default: target/debug/drillbook)
#   QDRANT_PYTHON: a python with qdrant-edge-py 0.9.0 (default /opt/drillbook-test/qdrant/bin/python;
#   made with `python3 -m venv /opt/drillbook-test/qdrant && .../pip install qdrant-edge-py==0.9.0`)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
drillbook="${1:-$here/../../../target/debug/drillbook}"
python="${QDRANT_PYTHON:-/opt/drillbook-test/qdrant/bin/python}"
work="$(mktemp -d /tmp/drillbook-sample.XXXXXX)"
trap 'rm -rf "$work"' EXIT
name=docs-1-2026-11-29-03-00-00.snapshot
"$python" "$here/make-sample.py" "$work/$name" "$work/queries.jsonl"
mkdir -p "$here/backups" "$here/truth"
"$drillbook" manifest --adapter qdrant --snapshot "$work/$name" --out "$here/truth/qdrant.json" \
  --queries "$work/queries.jsonl" --vector text --k 10
zstd -q -19 -T2 "$work/$name" -o "$here/backups/$name.zst"
(cd "$here/backups" && sha256sum "$name.zst" > "$name.zst.sha256")
echo "sample written to $here (backups/, truth/)"
