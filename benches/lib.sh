# Shared by the bench scripts, sourced from the repository root: `source benches/lib.sh`.

now() { date +%s.%N; }

# median_spread LABEL RATIO...: prints "LABELratio median M× (spread LO–HI×) over N rounds".
median_spread() {
  local label="$1"
  shift
  python3 - "$label" "$@" <<'PY'
import statistics, sys
label, r = sys.argv[1], sorted(float(x) for x in sys.argv[2:])
print(f"\n{label}ratio median {statistics.median(r):.3f}× (spread {r[0]:.3f}–{r[-1]:.3f}×) over {len(r)} rounds")
PY
}

# first_query REPORT [NAME...]: seconds from the drill's `locate` starting to the end of its check
# named "first query" (how the vector-store benches time a drill to its first answer), then the
# duration in seconds of each named step or check of the report, on one line.
first_query() {
  python3 - "$@" <<'PY'
import json, sys
from datetime import datetime
r = json.load(open(sys.argv[1]))
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
parts = {x["name"]: x for x in r["steps"] + r["checks"]}
first = t(parts["verify"]["started_at"]) + parts["first query"]["duration_ms"] / 1000 - t(parts["locate"]["started_at"])
print(f"{first:.3f}", *(f'{parts[n]["duration_ms"] / 1000:.3f}' for n in sys.argv[2:]))
PY
}

# files_runbooks DIR N daily|yearly: N runbooks rb-0 … rb-(N-1) of the `files` adapter over
# DIR/backups/a.txt, written to DIR/runbooks. `daily` spreads their fire times over the day;
# `yearly` fires on 1 January at 03:00 (nothing due while a bench runs). Their time zone is
# Europe/Berlin, or RUNBOOK_TZ.
files_runbooks() {
  local dir="$1" n="$2" kind="$3" schedule
  mkdir -p "$dir/runbooks" "$dir/backups"
  printf 'hello\n' > "$dir/backups/a.txt"
  for ((i = 0; i < n; i++)); do
    if [[ $kind == daily ]]; then schedule="$((i % 60)) $((i % 24)) * * *"; else schedule="0 3 1 1 *"; fi
    cat > "$dir/runbooks/rb-$i.yaml" <<YAML
version: 1
name: rb-$i
owner: team-$((i % 20))
schedule: "$schedule"
timezone: ${RUNBOOK_TZ:-Europe/Berlin}
asset: { name: asset-$i, kind: files }
objectives: { rpo: 26h, rto: 10m }
source: { path: $dir/backups/, pick: a.txt }
restore: { adapter: files }
YAML
  done
}

# load_runs_sqlite DB CSV: history rows as CSV, in the columns of runner/migrations (as
# benches/history.sh and benches/audit.sh write them), straight into a SQLite store's `runs`.
load_runs_sqlite() {
  python3 - "$1" "$2" <<'PY'
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
null = lambda v: None if v == "" else v
rows = ([null(v) for v in r] for r in csv.reader(open(sys.argv[2])))
db.executemany("INSERT INTO runs (run_id, runbook, status, started_at, finished_at, scheduled_for, report, report_sha256, "
               "failure_reasons, host, pid, notification, process, rto_s, rpo_s, failed_checks) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
db.commit()
db.execute("ANALYZE")
PY
}

# pg_cluster_start DIR PORT [SETTING=VALUE...]: a throwaway PostgreSQL cluster of PG_BIN in DIR
# on PORT (loopback and a socket in DIR), as `postgres` when run as root; fails loudly.
# pg_cluster_stop DIR stops it and removes DIR.
pg_as() { if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_cluster_start() {
  local dir="$1" port="$2" opts="-p $2 -k $1 -c listen_addresses=127.0.0.1" s
  shift 2
  for s in "$@"; do opts+=" -c $s"; done
  rm -rf "$dir" && mkdir -p "$dir"
  if [[ $EUID -eq 0 ]]; then chown postgres "$dir"; fi
  (cd "$dir" && pg_as "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null)
  (cd "$dir" && pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/log" -w start >/dev/null)
}
pg_cluster_stop() { (cd "$1" && pg_as "$PG_BIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null) || true; rm -rf "$1"; }
