#!/usr/bin/env bash
# Noisy neighbour (resilience.md §5.7.3, issue 4): does a tenant hammering the gateway at more
# than 10x its quota hurt another tenant's latency? One run, one machine:
#
#   bash benches/noisy_neighbour.sh
#
# A slow shared mock model (DELAY_MS per answer) behind `medgate proxy`. Tenant A has a quota
# of A_RPS requests per second; tenant B (quota well above its traffic) sends from
# B_CONNECTIONS connections. B is measured alone, then again while A floods with
# A_CONNECTIONS connections (far above 10x its quota; its excess gets 429). The "noisy" section
# of benches/RESULTS.md gets B's p50/p99 in both phases, their ratio, and what A got through.
# Timing is measured here, never asserted in tests (the test suite checks the isolation itself:
# A's excess is refused, B is served).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
DURATION=${DURATION:-10}
DELAY_MS=${DELAY_MS:-20}
A_RPS=${A_RPS:-50}
A_CONNECTIONS=${A_CONNECTIONS:-64}
B_CONNECTIONS=${B_CONNECTIONS:-4}
THREADS=${THREADS:-2}
BASE_PORT=${BASE_PORT:-18500}
RESULTS=${RESULTS:-$ROOT/benches/RESULTS.md}
HOST=127.0.0.1
MOCK_PORT=$((BASE_PORT + 1))
MEDGATE_PORT=$((BASE_PORT + 2))
KEY_A="mg_noisyaaaaaaa_1111111111111111111111111111111111111111111111111111111111111111"
KEY_B="mg_quietbbbbbbb_2222222222222222222222222222222222222222222222222222222222222222"

log() { printf '[noisy_neighbour.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
for tool in wrk curl sha256sum awk; do command -v "$tool" >/dev/null || die "$tool is required"; done

TMP=$(mktemp -d /tmp/medgate-noisy.XXXXXX)
PIDS=()
cleanup() {
    local status=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on $1"
}

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    cargo build --release -p medgate-benches --bins
    cargo build --release --bin medgate
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

sha() { printf '%s' "$1" | sha256sum | awk '{print $1}'; }
cat >"$TMP/gateway.yaml" <<EOF
tenants:
  - { id: t-noisy, code: noisy, status: active, quotas: null, allowed_models: [], log_request_payloads: false, cors_allowed_origins: [], isolation: null }
  - { id: t-quiet, code: quiet, status: active, quotas: null, allowed_models: [], log_request_payloads: false, cors_allowed_origins: [], isolation: null }
models:
  - id: m1
    name: gpt-small
    enabled: true
    provider: openai_compatible
    upstreams: [{ url: "http://$HOST:$MOCK_PORT/v1", weight: 1, api_key: null }]
    upstream_model: mock-echo
    connect_timeout_ms: 2000
    read_timeout_ms: 10000
    available_to_all_tenants: true
    parameters: {}
api_keys:
  - { id: key-a, tenant_id: t-noisy, prefix: "${KEY_A%_*}", secrets: [{ sha256: $(sha "$KEY_A"), valid_until: null }], expires_at: null, allowed_models: [] }
  - { id: key-b, tenant_id: t-quiet, prefix: "${KEY_B%_*}", secrets: [{ sha256: $(sha "$KEY_B"), valid_until: null }], expires_at: null, allowed_models: [] }
gateway: { max_body_bytes: 2097152, access_log_sample_rate: 0.01 }
protection:
  rate_limits:
    - { id: quota-a, tenant_id: t-noisy, scope: tenant, target: null, metric: requests, window: second, limit: $A_RPS, burst: null, mode: local, on_store_error: local_fallback, fallback_limit: null }
    - { id: quota-b, tenant_id: t-quiet, scope: tenant, target: null, metric: requests, window: second, limit: 10000, burst: null, mode: local, on_store_error: local_fallback, fallback_limit: null }
EOF
cat >"$TMP/chat.json" <<'EOF'
{"model":"gpt-small","messages":[{"role":"user","content":"Blood pressure 128/82, summarize."}],"max_tokens":16}
EOF
cat >"$TMP/chat.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_KEY")
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
if delay_ms > 0 then
    function delay() return delay_ms end
end
function done(summary, latency, requests)
    io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF

"$BIN/mock_upstream" --listen "$HOST:$MOCK_PORT" --threads 2 --delay-ms "$DELAY_MS" >"$TMP/mock.log" 2>&1 &
PIDS+=("$!")
wait_port "$MOCK_PORT"
MEDGATE_PROXY_THREADS=$THREADS RUST_LOG=warn "$BIN/medgate" proxy --config "$TMP/gateway.yaml" \
    --proxy-listen "$HOST:$MEDGATE_PORT" --data-dir "$TMP/data" >"$TMP/medgate.log" 2>&1 &
PIDS+=("$!")
wait_port "$MEDGATE_PORT"
for _ in $(seq 1 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$HOST:$MEDGATE_PORT/readyz") == 200 ]] && break
    sleep 0.1
done

# wrk_run KEY CONNECTIONS SECONDS OUT [DELAY_MS]: closed loop, each connection pausing
# DELAY_MS between requests.
wrk_run() {
    WRK_KEY=$1 WRK_BODY_FILE="$TMP/chat.json" WRK_DELAY_MS=${5:-0} wrk -t1 -c"$2" -d"$3s" \
        --latency -s "$TMP/chat.lua" "http://$HOST:$MEDGATE_PORT/v1/chat/completions" >"$4" 2>&1 || true
}
field() { grep -o "$2=[0-9]*" "$1" | head -1 | cut -d= -f2; }

log "warm-up"
wrk_run "$KEY_B" "$B_CONNECTIONS" 2 "$TMP/warm.txt"
log "phase 1: tenant B alone ($DURATION s)"
wrk_run "$KEY_B" "$B_CONNECTIONS" "$DURATION" "$TMP/solo.txt"
# 10x the quota: A's connections pause so that together they offer about 10 x A_RPS.
A_DELAY_MS=$((A_CONNECTIONS * 1000 / (10 * A_RPS)))
log "phase 2: tenant B while tenant A sends about 10x its quota ($A_CONNECTIONS connections, ${A_DELAY_MS} ms pauses)"
wrk_run "$KEY_A" "$A_CONNECTIONS" "$((DURATION + 2))" "$TMP/tenx-a.txt" "$A_DELAY_MS" &
A_WRK=$!
sleep 1
wrk_run "$KEY_B" "$B_CONNECTIONS" "$DURATION" "$TMP/tenx.txt"
wait "$A_WRK"
log "phase 3: tenant B while tenant A floods without pauses ($A_CONNECTIONS connections)"
wrk_run "$KEY_A" "$A_CONNECTIONS" "$((DURATION + 2))" "$TMP/noisy-a.txt" &
A_WRK=$!
sleep 1
wrk_run "$KEY_B" "$B_CONNECTIONS" "$DURATION" "$TMP/mixed.txt"
wait "$A_WRK"

solo_p50=$(field "$TMP/solo.txt" p50_us)
solo_p99=$(field "$TMP/solo.txt" p99_us)
mixed_p50=$(field "$TMP/mixed.txt" p50_us)
mixed_p99=$(field "$TMP/mixed.txt" p99_us)
[[ -n $solo_p99 && -n $mixed_p99 ]] || die "wrk produced no figures: $(cat "$TMP/solo.txt" "$TMP/mixed.txt")"
a_total=$(field "$TMP/noisy-a.txt" requests)
a_refused=$(field "$TMP/noisy-a.txt" non2xx)
a_secs=$(awk -v d="$(field "$TMP/noisy-a.txt" duration_us)" 'BEGIN { printf "%.1f", d / 1e6 }')
ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
ratio=$(awk -v a="$mixed_p99" -v b="$solo_p99" 'BEGIN { printf "%.2f", a / b }')
tenx_p99=$(field "$TMP/tenx.txt" p99_us)
tenx_ratio=$(awk -v a="$tenx_p99" -v b="$solo_p99" 'BEGIN { printf "%.2f", a / b }')
t_total=$(field "$TMP/tenx-a.txt" requests)
t_refused=$(field "$TMP/tenx-a.txt" non2xx)
t_secs=$(awk -v d="$(field "$TMP/tenx-a.txt" duration_us)" 'BEGIN { printf "%.1f", d / 1e6 }')

SECTION="$TMP/section.md"
{
    echo "<!-- noisy:begin (written by benches/noisy_neighbour.sh; do not edit by hand) -->"
    echo "## Noisy neighbour"
    echo
    echo "- Command: \`bash benches/noisy_neighbour.sh\` (DURATION=$DURATION, DELAY_MS=$DELAY_MS, A_RPS=$A_RPS, A_CONNECTIONS=$A_CONNECTIONS, B_CONNECTIONS=$B_CONNECTIONS, THREADS=$THREADS)"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`; $(nproc) cores; load average after: $(cut -d" " -f1-3 /proc/loadavg)"
    echo "- Setup: one mock model answering after $DELAY_MS ms, \`medgate proxy\` with $THREADS threads; tenant A's quota $A_RPS requests/s; wrk closed loop (wrk, gateway and mock share the 2 cores)."
    echo
    echo "| Tenant B | p50 (ms) | p99 (ms) | requests | non-2xx |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    echo "| alone | $(ms "$solo_p50") | $(ms "$solo_p99") | $(field "$TMP/solo.txt" requests) | $(field "$TMP/solo.txt" non2xx) |"
    echo "| while A sends ~10x its quota | $(ms "$(field "$TMP/tenx.txt" p50_us)") | $(ms "$tenx_p99") | $(field "$TMP/tenx.txt" requests) | $(field "$TMP/tenx.txt" non2xx) |"
    echo "| while A floods (no pauses) | $(ms "$mixed_p50") | $(ms "$mixed_p99") | $(field "$TMP/mixed.txt" requests) | $(field "$TMP/mixed.txt" non2xx) |"
    echo
    echo "- B's p99 with A at ~10x its quota / alone: **$tenx_ratio** (target <= 1.10). A sent $t_total requests in $t_secs s ($(awk -v n="$t_total" -v s="$t_secs" -v q="$A_RPS" 'BEGIN { printf "%.1fx its quota", n / s / q }')); $t_refused were refused with 429."
    echo "- B's p99 with A flooding / alone: **$ratio**. A sent $a_total requests in $a_secs s ($(awk -v n="$a_total" -v s="$a_secs" -v q="$A_RPS" 'BEGIN { printf "%.0fx its quota", n / s / q }')); $a_refused were refused with 429, $((a_total - a_refused)) admitted. Here the refusals themselves use up the 2 cores that wrk, the gateway and the mock share."
    echo "<!-- noisy:end -->"
} >"$SECTION"
cat "$SECTION"

if [[ -f $RESULTS ]] && grep -q '<!-- noisy:begin' "$RESULTS"; then
    awk -v section="$SECTION" '
        /<!-- noisy:begin/ { while ((getline line < section) > 0) print line; skip = 1; next }
        /<!-- noisy:end -->/ { skip = 0; next }
        !skip { print }
    ' "$RESULTS" >"$TMP/results.md"
    cp "$TMP/results.md" "$RESULTS"
else
    { echo; cat "$SECTION"; } >>"$RESULTS"
fi
log "wrote the noisy section of $RESULTS"
