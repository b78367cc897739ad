#!/usr/bin/env bash
# Builds the backups of runbooks/examples/rag-stack-pgvector.yaml (committed; rerun only to
# change them) with the real tools: the rag-stack sample's chunk embeddings loaded into a
# throwaway PostgreSQL + pgvector cluster (vector(16) under an HNSW index, as the RAG service
# keeps them), then
#   - backups/pgvector/vectors-<time>.dump.zst (+ .sha256): `pg_dump -Fc | zstd`, as a nightly
#     job would; pg_dump's header dates it;
#   - backups/pgvector/documents-<time>.tar.gz (+ .sha256): the rag-stack document archive,
#     named for the same night (`time_format: "%Y-%m-%d-%H%M"`), so `max_skew` compares the two.
# Usage: make-sample-pgvector.sh [PG_BIN]   (default: /opt/drillbook-test/pgvector/bin)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(readlink -f "${1:-/opt/drillbook-test/pgvector/bin}")"
work="$(mktemp -d /tmp/drillbook-sample.XXXXXX)"
as_pg=()
if [[ $EUID -eq 0 ]]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
port=$((20000 + RANDOM % 20000))
cleanup() { "${as_pg[@]}" "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
(cd "$work" && "${as_pg[@]}" "$bin/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null)
(cd "$work" && "${as_pg[@]}" "$bin/pg_ctl" -D "$work/data" -o "-p $port -k $work -c listen_addresses=127.0.0.1" -l "$work/log" -w start >/dev/null)
psql=("$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
"${psql[@]}" -d postgres -c "create database rag"
"${psql[@]}" -d rag -c "create extension vector;
  create table chunks (id text primary key, document_id text not null, ord integer not null, text text not null,
                       embedding vector(16) not null);"
# The chunks of the SQLite sample, their f32le embeddings as pgvector literals, through COPY.
python3 - "$here/backups/vectors/vectors-2026-11-29.sqlite.gz" <<'PY' | "${psql[@]}" -d rag -c "copy chunks from stdin"
import gzip, shutil, sqlite3, struct, sys, tempfile
tmp = tempfile.NamedTemporaryFile(suffix=".sqlite")
with gzip.open(sys.argv[1]) as g:
    shutil.copyfileobj(g, tmp)
tmp.flush()
db = sqlite3.connect(tmp.name)
esc = lambda s: s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
for cid, doc, ord_, text, blob in db.execute("select id, document_id, ord, text, embedding from chunks order by id"):
    vec = "[" + ",".join(repr(x) for x in struct.unpack(f"<{len(blob) // 4}f", blob)) + "]"
    print("\t".join([esc(cid), esc(doc), str(ord_), esc(text), vec]))
PY
"${psql[@]}" -d rag -c "create index chunks_embedding_hnsw on chunks using hnsw (embedding vector_cosine_ops);
  create index chunks_by_document on chunks (document_id);"
out="$here/backups/pgvector"
mkdir -p "$out"
rm -f "$out"/*
stamp="$(date -u +%Y-%m-%d-%H%M)"
"$bin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres -Fc rag | zstd -q -19 > "$out/vectors-$stamp.dump.zst"
cp "$here/backups/documents/documents-2026-11-29.tar.gz" "$out/documents-$stamp.tar.gz"
(cd "$out" && for f in *.zst *.gz; do sha256sum "$f" > "$f.sha256"; done)
ls -l "$out"
