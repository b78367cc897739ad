#!/usr/bin/env bash
# Benchmark: the daemon's HTTP side over a year of history at 1,000 runbooks (issue 11).
# Writes 1,000 runbooks (`files` adapter, yearly schedules: none due during the run) and a
# history of 1,000 × 365 daily runs (365,000 rows, 5 % failed) straight into the store, starts
# `drillbook daemon` on it, then requests `/metrics`, `/api/runs?limit=50` and `/` round by
# round (the three alternate within each round), and reads the daemon's resident memory and
# its CPU over an idle minute. Once with SQLite, once with PostgreSQL (the machine's 15).
#
#   benches/history.sh                     # both stores, 200 rounds, 60 s idle
#   STORES=sqlite ROUNDS=50 IDLE_S=10 benches/history.sh
#
# Prints a Markdown table: p50/p99/max per endpoint, the first `/metrics` after start (the
# ledger's one fold of the whole history), RSS and idle CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
N="${N:-1000}"
DAYS="${DAYS:-365}"
ROUNDS="${ROUNDS:-200}"
IDLE_S="${IDLE_S:-60}"
STORES="${STORES:-sqlite postgres}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/history"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"
rm -rf "$WORK"
files_runbooks "$WORK" "$N" yearly

# The rows as CSV, in the columns of runner/migrations (figures kept in the row, so no
# report file is read; no fire time, so the daemon has nothing to catch up on).
python3 - "$N" "$DAYS" > "$WORK/runs.csv" <<'PY'
import csv, datetime as d, random, sys
n, days = int(sys.argv[1]), int(sys.argv[2])
random.seed(7)
w = csv.writer(sys.stdout)
end = d.datetime.now(d.timezone.utc).replace(hour=3, minute=0, second=0, microsecond=0) - d.timedelta(days=1)
ts = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
for day in range(days):
    for b in range(n):
        start = end - d.timedelta(days=day) + d.timedelta(seconds=b * 3.6)
        took = random.uniform(20, 300)
        failed = random.random() < 0.05
        w.writerow([f"bench-{b:04d}-{day:03d}", f"rb-{b}", "failed" if failed else "passed", ts(start),
                    ts(start + d.timedelta(seconds=took)), "", f"/var/tmp/none/rb-{b}/{day}", "%064x" % (b * 1000 + day),
                    '["verify: rows: expected == 1, got 0"]' if failed else "[]", "bench-host", 1, "",
                    "", f"{took:.3f}", f"{random.uniform(3600, 90000):.0f}", int(failed)])
PY
COLUMNS="run_id, runbook, status, started_at, finished_at, scheduled_for, report, report_sha256, failure_reasons, host, pid, notification, process, rto_s, rpo_s, failed_checks"

measure() { # STORE STATE
  local store="$1" state="$2"
  cat > "$WORK/drillbook.yaml" <<YAML
runbooks: runbooks
state: "$state"
http: { listen: "127.0.0.1:0" }
YAML
  cd "$WORK"
  local t0 pid base
  t0=$(date +%s.%N)
  "$BIN" daemon > daemon.log 2>&1 &
  pid=$!
  trap "kill $pid 2>/dev/null || true" EXIT
  for _ in $(seq 100); do grep -q "http on" daemon.log && break; sleep 0.1; done
  base=$(sed -n 's/.*http on \(http:[^ ]*\).*/\1/p' daemon.log | head -1)
  python3 - "$base" "$ROUNDS" "$t0" "$store" "$pid" "$IDLE_S" "$DAYS" <<'PY'
import http.client, statistics, sys, time, os, urllib.parse
base, rounds, t0, store, pid, idle, days = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
u = urllib.parse.urlparse(base)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
def get(path):
    t = time.perf_counter()
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, (path, r.status, body[:200])
    return time.perf_counter() - t, body
# The first /metrics: the ledger folds the whole history once (started by the daemon at start).
get("/metrics")
first = time.time() - t0
_, body = get("/metrics")
expect = b'drillbook_drill_duration_seconds_count{runbook="rb-0",asset="asset-0",owner="team-0"} %d' % days
assert expect in body, ("the whole year is counted", body[:600])
paths = ["/metrics", "/api/runs?limit=50", "/"]
lat = {p: [] for p in paths}
for r in range(rounds):
    for p in paths[r % 3:] + paths[:r % 3]:
        lat[p].append(get(p)[0] * 1000)
def status(key):
    return int(next(l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith(key)))
ticks = lambda: sum(int(x) for x in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
time.sleep(5)  # the requests' last replies flushed and their buffers freed
t1, c1 = time.time(), ticks()
time.sleep(idle)
cpu = 100 * (ticks() - c1) / os.sysconf("SC_CLK_TCK") / (time.time() - t1)
# Where the resident memory is: the program's own pages (code, and its relocated data, which
# is private), anonymous memory (heap, arenas, stacks) and other files (libc, ...).
rss = {"program": 0, "anonymous": 0, "other files": 0}
exe, kind = os.path.realpath(f"/proc/{pid}/exe"), "anonymous"
for line in open(f"/proc/{pid}/smaps"):
    head = line.split()
    if head and "-" in head[0] and ":" not in head[0]:
        path = head[5] if len(head) > 5 else ""
        kind = "program" if path == exe else "other files" if path.startswith("/") else "anonymous"
    elif head and head[0] == "Rss:":
        rss[kind] += int(head[1])
split = " + ".join(f"{k} {v // 1024}" for k, v in rss.items())
for p in paths:
    v = sorted(lat[p])
    q = lambda f: v[min(len(v) - 1, int(f * len(v)))]
    print(f"| {store} | `{p}` | {len(v)} | {q(0.5):.1f} ms | {q(0.99):.1f} ms | {v[-1]:.1f} ms | "
          f"{first:.2f} s | {status('VmRSS:') // 1024} MiB (peak {status('VmHWM:') // 1024}; {split}) | {cpu:.2f} % |")
PY
  kill -TERM "$pid"; wait "$pid" || true
  trap - EXIT
  cd - >/dev/null
}

echo "| store | endpoint | requests | p50 | p99 | max | first /metrics after start | daemon RSS | idle CPU over ${IDLE_S} s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for store in $STORES; do
  case $store in
    sqlite)
      rm -f "$WORK/history.db"*
      (cd "$WORK" && printf 'runbooks: runbooks\nstate: "sqlite://%s/history.db"\n' "$WORK" > drillbook.yaml && "$BIN" history >/dev/null)
      load_runs_sqlite "$WORK/history.db" "$WORK/runs.csv"
      measure sqlite "sqlite://$WORK/history.db"
      ;;
    postgres)
      psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS drillbook_bench_history" -c "CREATE DATABASE drillbook_bench_history"
      url="postgres://postgres@127.0.0.1:5432/drillbook_bench_history"
      (cd "$WORK" && printf 'runbooks: runbooks\nstate: "%s"\n' "$url" > drillbook.yaml && "$BIN" history >/dev/null)
      psql -h 127.0.0.1 -U postgres -q -d drillbook_bench_history \
        -c "\\copy runs ($COLUMNS) FROM '$WORK/runs.csv' WITH (FORMAT csv)" -c "ANALYZE runs"
      measure postgres "$url"
      psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE drillbook_bench_history"
      ;;
  esac
done
