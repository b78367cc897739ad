#!/usr/bin/env bash
# Rebuilds the sample behind runbooks/examples/mariadb.yaml with the real tools: a throwaway
# MariaDB (Debian's 10.11: mariadb-install-db + mariadbd on a socket in a temp folder) holding a
# document store (documents with JSON metadata, chunks under a foreign key, a view, a trigger),
# then
#   - backups/docs-<date>.sql.zst (+ .sha256): `mariadb-dump --single-transaction | zstd`;
#   - truth/docs.json: `drillbook manifest --adapter mariadb` (row counts, digests, schema).
# Usage: make-sample.sh [DRILLBOOK]   (default: target/debug/drillbook)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
drillbook="${1:-$here/../../../target/debug/drillbook}"
work="$(mktemp -d /tmp/drillbook-sample.XXXXXX)"
chmod 755 "$work"
as_mysql=()
if [[ $EUID -eq 0 ]]; then chown mysql "$work"; as_mysql=(runuser -u mysql --); fi
sock="$work/mysql.sock"
cleanup() { [[ -f "$work/pid" ]] && kill "$(cat "$work/pid")" 2>/dev/null; sleep 1; rm -rf "$work"; }
trap cleanup EXIT
"${as_mysql[@]}" mariadb-install-db --no-defaults --datadir="$work/data" --auth-root-authentication-method=normal \
  --skip-test-db >/dev/null
"${as_mysql[@]}" /usr/sbin/mariadbd --no-defaults --datadir="$work/data" --socket="$sock" --skip-networking \
  --pid-file="$work/pid" --log-error="$work/log" &
until mariadb --no-defaults -S "$sock" -u root -e 'select 1' >/dev/null 2>&1; do sleep 0.1; done
mariadb --no-defaults -S "$sock" -u root <<'SQL'
create database docs;
use docs;
create table documents (id int primary key, title varchar(200) not null, meta json not null, key idx_title (title));
create table chunks (id int primary key, document_id int not null, body text not null,
  constraint fk_document foreign key (document_id) references documents (id));
insert into documents select seq, concat('Runbook ', seq), json_object('lang', if(seq % 4 = 0, 'de', 'en'), 'source', 'wiki')
  from seq_1_to_300;
insert into chunks select seq, 1 + seq % 300, concat('chunk ', seq, ' of runbook ', 1 + seq % 300) from seq_1_to_1200;
create view english_documents as select id, title from documents where json_value(meta, '$.lang') = 'en';
create trigger documents_title before insert on documents for each row set new.title = trim(new.title);
SQL
date=2026-11-29
mkdir -p "$here/backups" "$here/truth"
"$drillbook" manifest --adapter mariadb --url "mysql://root@localhost/docs?socket=$sock" --out "$here/truth/docs.json"
mariadb-dump --no-defaults -S "$sock" -u root --single-transaction --routines --triggers docs \
  | sed '/^-- Dump completed on/d' | zstd -q -19 > "$here/backups/docs-$date.sql.zst"
(cd "$here/backups" && sha256sum "docs-$date.sql.zst" > "docs-$date.sql.zst.sha256")
echo "sample written to $here (backups/, truth/)"
