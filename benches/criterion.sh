#!/usr/bin/env bash
# Runs the criterion micro-benchmarks with short settings and writes the "criterion" section of
# benches/RESULTS.md (the rest of the file is kept):
#
#   bash benches/criterion.sh
#
# which runs `cargo bench -p medgate-benches -- --warm-up-time 1 --measurement-time 3`.
# Extra arguments go to criterion (e.g. a filter: `bash benches/criterion.sh sse_meter`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
RESULTS=${RESULTS:-$ROOT/benches/RESULTS.md}
TMP=$(mktemp -d /tmp/medgate-criterion.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

LOADAVG=$(cut -d" " -f1-3 /proc/loadavg)
cargo bench -p medgate-benches -- --warm-up-time 1 --measurement-time 3 "$@" | tee "$TMP/out.txt"

{
    echo "<!-- criterion:begin (written by benches/criterion.sh; do not edit by hand) -->"
    echo "## Micro-benchmarks (criterion)"
    echo
    echo "- Command: \`bash benches/criterion.sh\`, i.e. \`cargo bench -p medgate-benches -- --warm-up-time 1 --measurement-time 3\`$( (($#)) && echo " $*")"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`$(git diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes')"
    echo "- Machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr), $(rustc --version | awk '{ print $1, $2 }'); load average before / after: $LOADAVG / $(cut -d" " -f1-3 /proc/loadavg)"
    echo "- Figures: criterion's estimate with its 95% confidence interval; throughput where the benchmark declares its input size."
    echo
    echo "| Benchmark | Time (estimate) | 95% interval | Throughput |"
    echo "| --- | ---: | ---: | ---: |"
    awk '
        function bracket(s,    a) { match(s, /\[[^]]*\]/); split(substr(s, RSTART + 1, RLENGTH - 2), a, " "); lo = a[1] " " a[2]; est = a[3] " " a[4]; hi = a[5] " " a[6] }
        function flush() { if (id != "") printf "| %s | %s | %s to %s | %s |\n", id, t_est, t_lo, t_hi, (thr == "" ? "" : thr); id = ""; thr = "" }
        /^Benchmarking / { next }
        # A rerun compares with the saved baseline: skip its "change:" block (time and thrpt
        # lines in percent) up to the next benchmark.
        /^[ \t]+change:/ { in_change = 1; next }
        /^[^ \t]/ { in_change = 0 }
        in_change { next }
        /time:[ \t]+\[/ {
            flush()
            i = index($0, "time:")
            id = substr($0, 1, i - 1); gsub(/^[ \t]+|[ \t]+$/, "", id)
            if (id == "") id = prev
            bracket(substr($0, i)); t_lo = lo; t_est = est; t_hi = hi
            next
        }
        /thrpt:[ \t]+\[/ { bracket($0); thr = est; next }
        /^[^ \t]/ && !/^(Found|Warning|Gnuplot|Running|Benchmarking)/ { line = $0; gsub(/[ \t]+$/, "", line); prev = line }
        END { flush() }' "$TMP/out.txt"
    echo "<!-- criterion:end -->"
} >"$TMP/section.md"

# shellcheck source=benches/section.sh
source "$ROOT/benches/section.sh"
write_section criterion "$TMP/section.md" "$RESULTS"
echo "[criterion.sh] wrote $RESULTS" >&2
