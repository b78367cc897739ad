#!/usr/bin/env bash
# Benchmark: the daemon with 1,000 runbooks loaded.
#   - idle: resident memory and CPU over a minute (no drill due);
#   - latency: from a fire time to the drill's first step, for a runbook firing every 2 s
#     (added with SIGHUP), measured from the reports (`steps[0].started_at - scheduled_for`).
#
#   benches/daemon.sh            # 1000 runbooks, 60 s idle, 20 s of 2-second fires
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
N="${N:-1000}"
IDLE_S="${IDLE_S:-60}"
FIRE_S="${FIRE_S:-20}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/daemon"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"
rm -rf "$WORK"
files_runbooks "$WORK" "$N" daily
cat > "$WORK/drillbook.yaml" <<YAML
runbooks: runbooks
http: { listen: "127.0.0.1:0" }
YAML
cd "$WORK"
"$BIN" history >/dev/null
"$BIN" daemon > daemon.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep 5
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks); s0=$(date +%s.%N)
sleep "$IDLE_S"
t1=$(ticks); s1=$(date +%s.%N)
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hz=$(getconf CLK_TCK)
cpu=$(python3 -c "print(f'{100 * ($t1 - $t0) / $hz / ($s1 - $s0):.2f}')")

cat > runbooks/every-2s.yaml <<YAML
version: 1
name: every-2s
owner: bench
schedule: "*/2 * * * * *"
asset: { name: bench, kind: files }
source: { path: $WORK/backups/, pick: a.txt }
restore: { adapter: files }
YAML
kill -HUP "$pid"
sleep "$FIRE_S"
kill -TERM "$pid"; wait "$pid" || true
trap - EXIT
read -r n median worst < <("$BIN" history --runbook every-2s --output json | python3 -c '
import json, sys, datetime as d
lat = []
for r in json.load(sys.stdin):
    if not (r["report"] and r["scheduled_for"]): continue
    rep = json.load(open(r["report"] + "/report.json"))
    first = d.datetime.fromisoformat(rep["steps"][0]["started_at"].replace("Z", "+00:00"))
    fire = d.datetime.fromisoformat(r["scheduled_for"].replace("Z", "+00:00"))
    lat.append((first - fire).total_seconds() * 1000)
lat.sort()
print(len(lat), f"{lat[len(lat)//2]:.1f}", f"{lat[-1]:.1f}")
')
echo
echo "| runbooks loaded | idle RSS | idle CPU over ${IDLE_S} s | fires measured | fire → first step, median | worst |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| $N | $((rss_kib / 1024)) MiB | $cpu % | $n | $median ms | $worst ms |"
