# shellcheck shell=bash
# write_section NAME SECTION_FILE RESULTS_FILE: puts SECTION_FILE (which starts with
# "<!-- NAME:begin" and ends with "<!-- NAME:end -->") into RESULTS_FILE in place of an earlier
# section of that name, or appends it; everything else in RESULTS_FILE is kept.
write_section() {
    local name=$1 section=$2 results=$3 tmp
    tmp=$(mktemp)
    if [[ -f $results ]] && grep -q "^<!-- $name:begin" "$results"; then
        awk -v section="$section" -v begin="^<!-- $name:begin" -v end="^<!-- $name:end" '
            $0 ~ begin { while ((getline line < section) > 0) print line; skip = 1; next }
            $0 ~ end { skip = 0; next }
            !skip { print }' "$results" >"$tmp"
    else
        { if [[ -f $results ]]; then cat "$results"; echo; fi; cat "$section"; } >"$tmp"
    fi
    cp "$tmp" "$results"
    rm -f "$tmp"
}
