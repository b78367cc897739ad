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
