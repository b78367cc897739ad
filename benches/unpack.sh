#!/usr/bin/env bash
# Benchmark: a drill of a tar.zst holding SIZE_MIB of files, from the fs source, side by side
# in one run with (a) the sequential script an SRE would write (`sha256sum -c; zstd -d | tar x`)
# and (b) the unpack alone (`zstd -d | tar x`, the physical floor).
#
#   benches/unpack.sh                 # 1 GiB, 3 rounds
#   SIZE_MIB=4096 ROUNDS=1 benches/unpack.sh
#   AGE=1 benches/unpack.sh           # the same backup age-encrypted (issue 17): drillbook's
#                                     # decrypt + hash + unpack vs `age -d | zstd -d | tar x`
#   RESTIC=1 benches/unpack.sh        # the same files as a restic snapshot (issue 17): a drill
#                                     # with `source.restic` vs `restic restore` alone
#
# Prints a Markdown table (median wall time, its spread, and peak RSS of each variant).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${SIZE_MIB:-1024}"
ROUNDS="${ROUNDS:-3}"
WORK="${BENCH_DIR:-/var/tmp/drillbook-bench}/$SIZE_MIB"
command -v zstd >/dev/null || { echo "needs zstd: apt-get install zstd" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time: apt-get install time" >&2; exit 1; }

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/drillbook"
mkdir -p "$WORK"

if [[ ! -f "$WORK/backups/data.tar.zst" ]]; then
  echo "generating $SIZE_MIB MiB of files in $WORK ..." >&2
  rm -rf "$WORK/src" && mkdir -p "$WORK/src" "$WORK/backups"
  # Half random, half text per file: compresses to roughly 55-60 % like real document stores.
  for ((i = 0; i < SIZE_MIB; i++)); do
    d="$WORK/src/d$((i / 64))"
    mkdir -p "$d"
    { head -c 524288 /dev/urandom; { yes "document $i: restore drills prove backups are usable" | head -c 524288 || true; }; } > "$d/f$i.bin"
  done
  tar -C "$WORK/src" -cf - . | zstd -q -T2 -3 -o "$WORK/backups/data.tar.zst"
  (cd "$WORK/backups" && sha256sum data.tar.zst > data.tar.zst.sha256)
  rm -rf "$WORK/src"
fi

OBJECT=data.tar.zst
DECODE="zstd -d -q -c backups/$OBJECT"
DECRYPT=""
if [[ -n "${AGE:-}" ]]; then
  command -v age >/dev/null || { echo "needs age: apt-get install age" >&2; exit 1; }
  if [[ ! -f "$WORK/backups/data.tar.zst.age" ]]; then
    rm -f "$WORK/age.key" && age-keygen -o "$WORK/age.key" 2>/dev/null
    age -r "$(age-keygen -y "$WORK/age.key")" -o "$WORK/backups/data.tar.zst.age" "$WORK/backups/data.tar.zst"
    (cd "$WORK/backups" && sha256sum data.tar.zst.age > data.tar.zst.age.sha256)
  fi
  OBJECT=data.tar.zst.age
  DECODE="age -d -i $WORK/age.key backups/$OBJECT | zstd -d -q -c"
  DECRYPT="  decrypt: { age_identity: \"\${file:$WORK/age.key}\" }"
fi

SOURCE="  path: backups/
  pick: $OBJECT
  checksum: sidecar
$DECRYPT"
if [[ -n "${RESTIC:-}" ]]; then
  command -v restic >/dev/null || { echo "needs restic: apt-get install restic" >&2; exit 1; }
  export RESTIC_PASSWORD_FILE="$WORK/restic.pw"
  if [[ ! -f "$WORK/restic/config" ]]; then
    echo "making a restic repository of the same files in $WORK/restic ..." >&2
    rm -rf "$WORK/restic" "$WORK/src" && mkdir -p "$WORK/src"
    head -c 24 /dev/urandom | base64 > "$RESTIC_PASSWORD_FILE"
    zstd -d -q -c "$WORK/backups/data.tar.zst" | tar -x -C "$WORK/src"
    restic -r "$WORK/restic" init -q
    (cd "$WORK/src" && restic -r "$WORK/restic" backup -q --no-cache .)
    rm -rf "$WORK/src"
  fi
  # drillbook runs restic as nobody when it is root: the repository must be readable to it.
  chmod -R go+rX "$WORK/restic"
  SOURCE="  restic: { repository: $WORK/restic, password: \"\${file:$RESTIC_PASSWORD_FILE}\" }"
fi

# A config of its own: the defaults (history, development key) resolve beside it, in $WORK.
printf 'reports: reports\n' > "$WORK/drillbook.yaml"

cat > "$WORK/bench.yaml" <<YAML
version: 1
name: bench-unpack
owner: bench
asset: { name: bench, kind: files }
source:
$SOURCE
restore: { adapter: files }
timeouts: { step: 30m, drill: 30m }
YAML

# One timed run of a variant: appends "wall rss_kib" to $WORK/<key>.times.
once() { # key, command...
  local key="$1"; shift
  rm -rf "$WORK/out" "$WORK/tmp" && mkdir -p "$WORK/out" "$WORK/tmp"
  sync
  if ! /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/stderr.txt"; then
    echo "variant failed: $key" >&2; cat "$WORK/stderr.txt" >&2; exit 1
  fi
  tail -n1 "$WORK/time.txt" >> "$WORK/$key.times"
}

# "name<TAB>median<TAB>min<TAB>max<TAB>peak RSS MiB" of a variant's rounds.
summary() { # key, name
  local walls; walls=$(cut -d' ' -f1 "$WORK/$1.times" | sort -n)
  local n; n=$(echo "$walls" | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\n' "$2" "$(echo "$walls" | sed -n "$(((n + 1) / 2))p")" \
    "$(echo "$walls" | head -n1)" "$(echo "$walls" | tail -n1)" \
    "$(( $(cut -d' ' -f2 "$WORK/$1.times" | sort -n | tail -n1) / 1024 ))"
}

cd "$WORK"
# Warm the page cache once so every variant reads the same way.
if [[ -n "${RESTIC:-}" ]]; then cat restic/data/*/* > /dev/null; else cat "backups/$OBJECT" > /dev/null; fi
rm -f "$WORK"/*.times
# The variants alternate round by round (this VM drifts; a block of rounds per variant would
# land the drift on one of them), and their order rotates each round.
variants=(floor script drill)
for ((r = 0; r < ROUNDS; r++)); do
  for ((i = 0; i < 3; i++)); do
    case "${variants[$(((r + i) % 3))]}" in
      floor) if [[ -n "${RESTIC:-}" ]]; then
          once floor restic -r restic --no-cache --no-lock restore latest --target out
        else
          once floor bash -c "$DECODE | tar -x -C out"
        fi ;;
      script) if [[ -n "${RESTIC:-}" ]]; then
          once script bash -c "restic -r restic --no-cache --no-lock dump latest / | tar -x -C out"
        else
          once script bash -c "cd backups && sha256sum -c --quiet $OBJECT.sha256 && cd .. && $DECODE | tar -x -C out"
        fi ;;
      drill) once drill env TMPDIR="$WORK/tmp" "$BIN" run bench.yaml --report-dir "$WORK/reports" --config "$WORK/drillbook.yaml" ;;
    esac
  done
done
results=()
dec="zstd -d"
[[ -n "${AGE:-}" ]] && dec="age -d | zstd -d"
if [[ -n "${RESTIC:-}" ]]; then
  results+=("$(summary floor "(b) restic restore latest --target out  (floor)")")
  results+=("$(summary script "(a) restic dump latest / | tar x")")
  results+=("$(summary drill "drillbook run (restic restore + unpack rules + teardown)")")
  size=$(du -sb restic | cut -f1)
  what="restic repository"
else
  results+=("$(summary floor "(b) $dec | tar x  (floor)")")
  results+=("$(summary script "(a) sha256sum -c; $dec | tar x")")
  results+=("$(summary drill "drillbook run (hash + unpack + teardown)")")
  size=$(stat -c %s "backups/$OBJECT")
  what="$OBJECT"
fi
floor=$(echo "${results[0]}" | cut -f2)
echo
echo "backup: $((size / 1048576)) MiB $what holding $SIZE_MIB MiB of files; $ROUNDS rounds, variants alternating; $(nproc) cores"
echo
echo "| variant | median wall s | spread (min–max) | × floor (median) | peak RSS MiB |"
echo "| --- | --- | --- | --- | --- |"
for r in "${results[@]}"; do
  IFS=$'\t' read -r n w lo hi m <<< "$r"
  n=${n//|/\\|}
  echo "| \`$n\` | $w | $lo–$hi | $(echo "scale=2; $w / $floor" | bc) | $m |"
done
