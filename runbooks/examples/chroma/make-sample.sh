#!/usr/bin/env bash
# Rebuilds the sample behind runbooks/examples/chroma.yaml with the real engine: chromadb
# (PyPI) writes a RAG system's persist folder (make-sample.py: `docs`, 800 chunks of 64-d,
# cosine; `faq`, 40 entries, l2), then
#   - truth/chroma.json + truth/chroma.golden.jsonl: `drillbook manifest --adapter chroma
#     --path` (counts, dimensions, metadata, record digests; exact answers to 20 golden queries);
#   - backups/rag-chroma-<date>.tar.zst (+ .sha256): the stopped persist folder, tar + zstd,
#     as a nightly job would.
# Usage: make-sample.sh [DRILLBOOK]   (default: target/debug/drillbook)
#   CHROMA_BIN: the folder of `chroma` and the venv's `python` (default /opt/drillbook-test/chroma/bin)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
drillbook="${1:-$here/../../../target/debug/drillbook}"
bin="${CHROMA_BIN:-/opt/drillbook-test/chroma/bin}"
work="$(mktemp -d /tmp/drillbook-sample.XXXXXX)"
trap 'rm -rf "$work"' EXIT
ANONYMIZED_TELEMETRY=False "$bin/python" "$here/make-sample.py" "$work/data" "$work/queries.jsonl"
date=2026-11-29
mkdir -p "$here/backups" "$here/truth"
"$drillbook" manifest --adapter chroma --path "$work/data" --bin-dir "$bin" --out "$here/truth/chroma.json" \
  --queries "$work/queries.jsonl" --collection docs --k 10
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$date 03:00Z" -C "$work/data" -cf - . |
  zstd -q -19 > "$here/backups/rag-chroma-$date.tar.zst"
(cd "$here/backups" && sha256sum "rag-chroma-$date.tar.zst" > "rag-chroma-$date.tar.zst.sha256")
echo "sample written to $here (backups/, truth/)"
