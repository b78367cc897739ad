#!/usr/bin/env bash
# Benchmark: the audit bundle of a year at 1,000 runbooks (issue 15). 365,000 signed report
# folders (report.json, .dsse.json, .html, .md) are written from one real drill's report by
# `reports/examples/year_of_reports.rs` (each with its own run id, times, chain link, rendered
# HTML and signature), their history rows go straight into a SQLite store, and the runbooks fire
# daily (UTC) so every row serves a fire time. Then, round by round with the order rotating:
#   export:  `drillbook audit export` of the year   vs  `tar -cf` of the report folders plus
#            `sha256sum` of every file (what a bundle is made of, with no coverage, index or
#            signature: the floor)
#   verify:  `drillbook audit verify` of the bundle  vs  `tar -xf` + `sha256sum -c SHA256SUMS`
#            (the floor: no signature checked)
# Time is wall clock; peak RSS is GNU time's %M (the largest process of the variant).
#
#   benches/audit.sh                      # 1,000 runbooks × 365 days, 3 rounds
#   N=100 DAYS=30 ROUNDS=2 PROFILE=dev benches/audit.sh
#   VERIFY_SH=1 ...                       # also times the bundle's own verify.sh (one openssl per report)
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
N="${N:-1000}"
DAYS="${DAYS:-365}"
ROUNDS="${ROUNDS:-3}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/audit"
PROFILE="${PROFILE:-release}"
if [[ $PROFILE == release ]]; then
  cargo build --release --quiet -p drillbook -p drillbook-reports --bins --examples
else
  cargo build --quiet -p drillbook -p drillbook-reports --bins --examples
fi
OUT="${CARGO_TARGET_DIR:-$PWD/target}/$([[ $PROFILE == release ]] && echo release || echo debug)"
BIN="$OUT/drillbook"
GEN="$OUT/examples/year_of_reports"
# The year of reports takes ~4 min and ~10 GB to write: kept between runs of the same size.
if [[ -f $WORK/made && $(cat "$WORK/made") == "$N $DAYS" ]]; then
  cd "$WORK"
  echo "reusing the $((N * DAYS)) report folders in $WORK" >&2
else
  rm -rf "$WORK"
  RUNBOOK_TZ=UTC files_runbooks "$WORK" "$N" daily
  cd "$WORK"
  printf 'runbooks: runbooks\nstate: "sqlite://%s/history.db"\n' "$WORK" > drillbook.yaml
  # One real drill: its report is the template every generated report is made from.
  "$BIN" run runbooks/rb-0.yaml > /dev/null
  template=$(ls -d drill-reports/rb-0/*/report.json | head -1)
  date -u -d yesterday +%F > last
  rm -f history.db*
  "$BIN" history > /dev/null
  t0=$(now)
  "$GEN" "$template" .drillbook/signing.pem "$WORK/reports" "$N" "$DAYS" "$(cat last)" > runs.csv
  echo "generated $(wc -l < runs.csv) signed report folders ($(du -sh reports | cut -f1)) in $(python3 -c "print(f'{$(now) - $t0:.0f}')") s" >&2
  load_runs_sqlite history.db runs.csv
  echo "$N $DAYS" > made
fi
last=$(cat last)
from=$(date -u -d "$last - $((DAYS - 1)) days" +%F)
to=$(date -u -d "$last + 1 day" +%F)
sync

timed() { # OUT CMD...: runs CMD, appends "wall_s rss_kib" to OUT
  local out="$1"
  shift
  sync # what the previous variant wrote is on disk before this one starts
  /usr/bin/time -f "%e %M" -o "$out.t" "$@" > "$out.log" 2>&1 || { cat "$out.log" >&2; exit 1; }
  cat "$out.t" >> "$out"
}
# Every variant starts with what it reads in the page cache (the reports, or the bundle: 10 + 7
# GB, which fit in 24 GiB only while nothing else is kept), and what it writes is removed after.
warm() { find "$@" -type f -print0 | xargs -0 cat > /dev/null; }
export_drillbook() {
  rm -f bundle.tar && warm reports && timed "$1" "$BIN" audit export --from "$from" --to "$to" --out bundle.tar
}
export_floor() {
  warm reports
  timed "$1" sh -c 'tar -cf floor.tar reports && find reports -type f -print0 | xargs -0 sha256sum > floor.sums'
  rm -f floor.tar floor.sums
}
verify_drillbook() { warm bundle.tar && timed "$1" "$BIN" audit verify bundle.tar --pubkey .drillbook/signing.pub.pem; }
verify_floor() {
  rm -rf floor-x && mkdir floor-x && warm bundle.tar
  timed "$1" sh -c 'tar -xf bundle.tar -C floor-x && cd floor-x/drillbook-audit && sha256sum -c --quiet SHA256SUMS'
  rm -rf floor-x
}
rm -f export.* verify.*
for ((r = 0; r < ROUNDS; r++)); do
  if ((r % 2 == 0)); then export_drillbook export.drillbook; export_floor export.floor
  else export_floor export.floor; export_drillbook export.drillbook; fi
  grep -q "wrote bundle.tar: $((N * DAYS)) reports, $((N * DAYS)) fire times (0 gaps)" export.drillbook.log ||
    { cat export.drillbook.log >&2; exit 1; }
  if ((r % 2 == 0)); then verify_drillbook verify.drillbook; verify_floor verify.floor
  else verify_floor verify.floor; verify_drillbook verify.drillbook; fi
  grep -q "$((N * DAYS)) reports verified" verify.drillbook.log || { cat verify.drillbook.log >&2; exit 1; }
done
if [[ ${VERIFY_SH:-0} == 1 ]]; then
  rm -rf sh-x && mkdir sh-x && tar -xf bundle.tar -C sh-x
  timed verify.sh sh sh-x/drillbook-audit/verify.sh "$WORK/.drillbook/signing.pub.pem"
  rm -rf sh-x
fi

echo "bundle: $(du -h bundle.tar | cut -f1), $((N * DAYS)) reports, $(tar -tf bundle.tar | wc -l) files"
echo
echo "| step | variant | median wall s | spread (min–max) | × floor, round by round (median, spread) | peak RSS MiB (max) |"
echo "| --- | --- | --- | --- | --- | --- |"
for f in export.drillbook export.floor verify.drillbook verify.floor verify.sh; do
  [[ -e $f ]] || continue
  python3 - "$f" <<'PY'
import statistics, sys
f = sys.argv[1]
read = lambda f: [tuple(map(float, l.split())) for l in open(f) if l.strip()]
rows = read(f)
w = sorted(r[0] for r in rows)
label = {"export.drillbook": ("export", "`drillbook audit export`"), "export.floor": ("export", "`tar -cf` + `sha256sum` (floor)"),
         "verify.drillbook": ("verify", "`drillbook audit verify`"), "verify.floor": ("verify", "`tar -xf` + `sha256sum -c` (floor)"),
         "verify.sh": ("verify", "the bundle's `verify.sh`")}[f]
ratio = "1.00"
if f.endswith(".drillbook"):
    floor = read(f.replace(".drillbook", ".floor"))
    r = sorted(a[0] / b[0] for a, b in zip(rows, floor))
    ratio = f"{statistics.median(r):.2f}× ({r[0]:.2f}–{r[-1]:.2f}×)"
elif f == "verify.sh":
    ratio = ""
print(f"| {label[0]} | {label[1]} | {statistics.median(w):.1f} | {w[0]:.1f}–{w[-1]:.1f} | {ratio} | {max(r[1] for r in rows) / 1024:.0f} |")
PY
done
