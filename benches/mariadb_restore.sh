#!/usr/bin/env bash
# Benchmark: restoring a large `mariadb-dump` with drillbook (`restore` step: the client-command
# scan and `mariadb --sandbox --binary-mode` fed on stdin) vs `mariadb db < dump` into a server
# with the same settings, side by side in one run, rounds alternating which goes first; and the
# same data as a `mariadb-backup` backup (drillbook's prepare + start) for comparison.
#
#   benches/mariadb_restore.sh                  # 1M rows x ~1 KB (~1 GB dump), 3 rounds
#   ROWS=200000 ROUNDS=2 benches/mariadb_restore.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
ROWS="${ROWS:-1000000}"
ROUNDS="${ROUNDS:-3}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/mariadb-$ROWS"
command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || { echo "needs MariaDB (apt-get install mariadb-server mariadb-backup)" >&2; exit 1; }

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"
mkdir -p "$WORK/backups" "$WORK/physical"
chmod 755 "$WORK" "$(dirname "$WORK")"
as_mysql=()
if [[ $EUID -eq 0 ]]; then as_mysql=(runuser -u mysql --); fi
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 8 ))
((mem_mb > 4096)) && mem_mb=4096
# drillbook's throwaway-restore settings (adapters/src/mariadb/server.rs), given to both.
SETTINGS=(--innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --skip-log-bin --innodb-buffer-pool-size=${mem_mb}M
  --innodb-log-file-size=512M --max-allowed-packet=1G --character-set-server=utf8mb4)

# A server in $1 (fresh data folder unless $2 names one); waits until it answers.
start_server() {
  local dir="$1" data="${2:-$1/data}"
  mkdir -p "$dir" && chmod 755 "$dir"
  [[ $EUID -eq 0 ]] && chown mysql "$dir"
  if [[ -z "${2:-}" ]]; then
    "${as_mysql[@]}" mariadb-install-db --no-defaults --datadir="$data" --auth-root-authentication-method=normal --skip-test-db >/dev/null
  fi
  "${as_mysql[@]}" /usr/sbin/mariadbd --no-defaults --datadir="$data" --socket="$dir/mysql.sock" --skip-networking \
    --pid-file="$dir/pid" --log-error="$dir/log" "${SETTINGS[@]}" &
  until mariadb --no-defaults -S "$dir/mysql.sock" -u root -e 'select 1' >/dev/null 2>&1; do sleep 0.1; done
}
stop_server() { kill "$(cat "$1/pid")" 2>/dev/null || true; while [[ -f "$1/pid" ]]; do sleep 0.1; done; rm -rf "$1"; }

DUMP="$WORK/backups/docs.sql"
if [[ ! -f "$DUMP" ]]; then
  echo "building the source: $ROWS rows of ~1 KB ..." >&2
  start_server "$WORK/src"
  mariadb --no-defaults -S "$WORK/src/mysql.sock" -u root <<SQL
create database docs;
use docs;
create table documents (id int primary key, title varchar(200) not null, body text not null, meta json not null, key idx_title (title));
insert into documents select seq, concat('Document ', seq), concat(repeat(md5(seq), 28), ' end'), json_object('lang', if(seq % 4 = 0, 'de', 'en'))
  from seq_1_to_$ROWS;
SQL
  mariadb-dump --no-defaults -S "$WORK/src/mysql.sock" -u root --single-transaction docs > "$DUMP"
  rm -rf "$WORK/physical/backup"
  mariadb-backup --backup --socket="$WORK/src/mysql.sock" --user=root --target-dir="$WORK/physical/backup" 2>/dev/null
  tar -C "$WORK/physical" -cf "$WORK/physical/full.tar" backup && rm -rf "$WORK/physical/backup"
  stop_server "$WORK/src"
fi
DUMP_MB=$(( $(stat -c %s "$DUMP") / 1048576 ))

cat > "$WORK/logical.yaml" <<YAML
version: 1
name: bench-mariadb-logical
owner: bench
asset: { name: bench, kind: relational }
source: { path: $WORK/backups/, pick: docs.sql }
restore: { adapter: mariadb }
verify:
  - name: rows
    sql: select count(*) from documents
    expect: "== $ROWS"
timeouts: { step: 2h, drill: 3h }
YAML
sed -e "s|name: bench-mariadb-logical|name: bench-mariadb-physical|" -e "s|path: $WORK/backups/, pick: docs.sql|path: $WORK/physical/, pick: full.tar|" \
  -e "s|from documents|from docs.documents|" "$WORK/logical.yaml" > "$WORK/physical.yaml"

raw_round() {
  start_server "$WORK/raw"
  mariadb --no-defaults -S "$WORK/raw/mysql.sock" -u root -e 'create database docs'
  local t0 t1
  t0=$(now)
  mariadb --no-defaults -S "$WORK/raw/mysql.sock" -u root docs < "$DUMP"
  t1=$(now)
  stop_server "$WORK/raw"
  raw=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
}

# $1: runbook, $2: round; sets $restore and $parts.
drill_round() {
  local out="$WORK/report-$(basename "$1" .yaml)-$2.json"
  (cd "$WORK" && "$BIN" run "$1" --report-dir "$WORK/reports" --output json > "$out") || { echo "drill failed: $out" >&2; exit 1; }
  read -r restore parts < <(python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = {x["name"]: x["duration_ms"] / 1000 for x in r["steps"]}
parts = " + ".join(f'{k} {v:.1f} s' for k, v in s.items() if k.startswith("restore."))
print(f'{s["restore"]:.1f} {parts}')
PY
)
}

rows=()
ratios=()
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then raw_round; drill_round logical.yaml "$r"; else drill_round logical.yaml "$r"; raw_round; fi
  logical="$restore"
  ratio=$(python3 -c "print(f'{$logical / $raw:.3f}')")
  ratios+=("$ratio")
  drill_round physical.yaml "$r"
  rows+=("| $r | $DUMP_MB MiB | $raw s | $logical s | $ratio× | $restore s ($parts) |")
done
echo
echo "| round | dump | mariadb < dump | drillbook restore (logical) | ratio | drillbook restore (mariadb-backup) |"
echo "| --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
median_spread "" "${ratios[@]}"
