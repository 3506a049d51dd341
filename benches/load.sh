#!/usr/bin/env bash
# Load scenario (DESIGN.md §8): one run, one machine, one mock upstream, measured with wrk.
#
#   bash benches/load.sh
#
# Builds the release binaries, starts the testkit mock upstream, nginx (proxy_pass), a bare
# Pingora pass-through and medgate (`medgate proxy` from a static gateway file), drives each
# with wrk and writes the "load" section of benches/RESULTS.md (between its markers; the rest
# of the file is kept). Every process it starts is stopped on exit. Traffic goes to 127.0.0.1
# only, and every wrk run is bounded by DURATION.
#
# Knobs (environment): DURATION (s, default 10), WARMUP (s, 2), CONNECTIONS (32),
# WRK_THREADS (2), PROXY_THREADS_LIST (Pingora threads for bare Pingora and medgate, "1 2"),
# NGINX_WORKERS (nproc), BASE_PORT (18400; uses BASE_PORT+1..+4), RESULTS (benches/RESULTS.md),
# SKIP_BUILD=1 (use the binaries already in target/release).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
PROXY_THREADS_LIST=${PROXY_THREADS_LIST:-"1 2"}
NGINX_WORKERS=${NGINX_WORKERS:-$(nproc)}
BASE_PORT=${BASE_PORT:-18400}
RESULTS=${RESULTS:-$ROOT/benches/RESULTS.md}

MOCK_PORT=$((BASE_PORT + 1))
NGINX_PORT=$((BASE_PORT + 2))
BARE_PORT=$((BASE_PORT + 3))
MEDGATE_PORT=$((BASE_PORT + 4))
HOST=127.0.0.1
# One API key of the static gateway file: mg_<id>_<secret>.
KEY="mg_bench0000001_5f0c7e2a9d4b8c1e6f3a7d2b9c4e8f1a5d0c7b3e9f2a6d4c8b1e7f3a9d5c2b6e"
MODEL=gpt-small

log() { printf '[load.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for tool in wrk nginx curl sha256sum awk; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [[ $tool == wrk || $tool == nginx ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing nginx and wrk (Debian packages)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null ||
                { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null; }
        fi
        command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
    fi
done

LOADAVG=$(cut -d" " -f1-3 /proc/loadavg)
TMP=$(mktemp -d /tmp/medgate-load.XXXXXX)
PIDS=()

stop_pids() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid did not stop in 15 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local status=$?
    if ((${#PIDS[@]})); then stop_pids "${PIDS[@]}"; fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_port() {
    local port=$1 pid=$2 name=$3
    for _ in $(seq 1 200); do
        port_busy "$port" && return 0
        kill -0 "$pid" 2>/dev/null || die "$name exited early; see $TMP/$name.log: $(tail -5 "$TMP/$name.log" 2>/dev/null)"
        sleep 0.05
    done
    die "$name did not listen on $port within 10 s"
}

# start NAME PORT COMMAND...: runs a server in the background and waits for its port.
start() {
    local name=$1 port=$2
    shift 2
    port_busy "$port" && die "port $port (for $name) is already in use; set BASE_PORT"
    "$@" >"$TMP/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$port" "$pid" "$name"
    LAST_PID=$pid
}

forget_pids() {
    local keep=() pid drop
    for pid in "${PIDS[@]}"; do
        drop=0
        for d in "$@"; do [[ $pid == "$d" ]] && drop=1; done
        ((drop)) || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

# ---------------------------------------------------------------------------------------------
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    cargo build --release -p medgate-benches --bins
    cargo build --release --bin medgate
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
for b in medgate mock_upstream bare_pingora; do [[ -x $BIN/$b ]] || die "missing $BIN/$b"; done

# The request bodies and the wrk script.
cat >"$TMP/chat.json" <<'EOF'
{"model":"gpt-small","messages":[{"role":"system","content":"You are a clinical documentation assistant."},{"role":"user","content":"Summarize: patient reports a mild headache since yesterday, no fever, blood pressure 128/82."}],"max_tokens":64}
EOF
cat >"$TMP/bench.lua" <<'EOF'
local body_file = os.getenv("WRK_BODY_FILE") or ""
local key = os.getenv("WRK_KEY") or ""
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
wrk.method = os.getenv("WRK_METHOD") or "GET"
wrk.path = os.getenv("WRK_PATH") or "/"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
if body_file ~= "" then
    local f = assert(io.open(body_file, "rb"))
    wrk.body = f:read("*a")
    f:close()
end
if delay_ms > 0 then
    function delay() return delay_ms end
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d errors=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
EOF

# The static gateway file: one tenant, one model on the mock, one key, and one generic route
# (the plain route: GET /plain/models -> the mock's GET /v1/models, on Pingora's native path).
KEY_SHA=$(printf '%s' "$KEY" | sha256sum | awk '{print $1}')
cat >"$TMP/gateway.yaml" <<EOF
tenants:
  - id: t-bench
    code: bench-clinic
    status: active
    quotas: null
    allowed_models: []
    log_request_payloads: false
    cors_allowed_origins: []
    isolation: null
models:
  - id: m-bench
    name: $MODEL
    enabled: true
    provider: openai_compatible
    upstreams:
      - url: http://$HOST:$MOCK_PORT/v1
        weight: 1
        api_key: sk-upstream-bench
    # Differs from the name, so the body is rewritten on every request, as in production.
    upstream_model: mock-echo
    connect_timeout_ms: 2000
    read_timeout_ms: 10000
    available_to_all_tenants: true
    parameters: {}
api_keys:
  - id: key-bench
    tenant_id: t-bench
    prefix: ${KEY%_*}
    secrets:
      - sha256: $KEY_SHA
        valid_until: null
    expires_at: null
    allowed_models: []
tenant_models: []
routes:
  - id: r-plain
    name: plain
    tenant_id: null
    match:
      path_prefix: /plain
    targets:
      - url: http://$HOST:$MOCK_PORT/v1
        weight: 1
    strip_prefix: true
    plugins: []
gateway:
  max_body_bytes: 2097152
  access_log_sample_rate: 1.0
# The inference chain runs with traffic protection on: two rate limits (requests and tokens,
# far above what the run reaches, so every request is charged and admitted) and a breaker.
protection:
  rate_limits:
    - { id: bench-rps, tenant_id: null, scope: tenant, target: null, metric: requests, window: second, limit: 1000000000, burst: null, mode: local, on_store_error: local_fallback, fallback_limit: null }
    - { id: bench-tpm, tenant_id: null, scope: tenant, target: null, metric: tokens, window: minute, limit: 1000000000000, burst: null, mode: local, on_store_error: local_fallback, fallback_limit: null }
  breakers:
    - { id: bench-cb, tenant_id: null, target: { kind: model, name: $MODEL }, per_tenant: false, strategy: error_ratio, threshold: 0.5, slow_call_ms: null, min_requests: 20, window_ms: 10000, open_ms: 10000, max_open_ms: null, half_open_probes: 1, half_open_max_wait_ms: 30000, count_429: false }
EOF

# nginx: proxy_pass to the mock with upstream keep-alive, one worker per core.
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream mock {
        server $HOST:$MOCK_PORT;
        keepalive 64;
    }
    server {
        listen $HOST:$NGINX_PORT;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

# ---------------------------------------------------------------------------------------------
# run LABEL PORT METHOD PATH [BODY_FILE] [KEY] [CONNECTIONS] [DELAY_MS]: warm-up, then a
# measured run; appends "label|rps|p50_us|p99_us|non2xx|errors|requests" to $TMP/rows.
run() {
    local label=$1 port=$2 method=$3 path=$4 body=${5:-} key=${6:-} conns=${7:-$CONNECTIONS} delay=${8:-0}
    local url="http://$HOST:$port"
    local env=(WRK_METHOD="$method" WRK_PATH="$path" WRK_BODY_FILE="$body" WRK_KEY="$key" WRK_DELAY_MS="$delay")
    local threads=$WRK_THREADS
    ((conns < threads)) && threads=$conns
    env "${env[@]}" wrk -t"$threads" -c"$conns" -d"${WARMUP}s" -s "$TMP/bench.lua" "$url" >/dev/null 2>&1 || true
    local out
    out=$(env "${env[@]}" timeout $((DURATION + 30)) wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 5s --latency -s "$TMP/bench.lua" "$url" 2>&1) ||
        die "wrk failed for $label: $out"
    printf '%s\n' "$out" >>"$TMP/wrk-raw.log"
    local line
    line=$(grep '^RESULT ' <<<"$out") || die "no RESULT line from wrk for $label: $out"
    local row
    row=$(awk -v label="$label" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%s|%.0f|%d|%d|%d|%d|%d\n", label, v["requests"] / (v["duration_us"] / 1e6),
            v["p50_us"], v["p99_us"], v["non2xx"], v["errors"], v["requests"]
    }' <<<"$line")
    echo "$row" >>"$TMP/rows"
    log "$(awk -F'|' '{ printf "%-44s %8s req/s  p50 %6.2f ms  p99 %6.2f ms  non-2xx %s  errors %s", $1, $2, $3/1000, $4/1000, $5, $6 }' <<<"$row")"
}

rps_of() { awk -F'|' -v l="$1" '$1 == l { print $2 }' "$TMP/rows"; }
p99_of() { awk -F'|' -v l="$1" '$1 == l { print $4 }' "$TMP/rows"; }

: >"$TMP/rows"
log "starting the mock upstream on $MOCK_PORT"
start mock "$MOCK_PORT" "$BIN/mock_upstream" --listen "$HOST:$MOCK_PORT" --threads "$(nproc)"
log "starting nginx on $NGINX_PORT ($NGINX_WORKERS workers)"
start nginx "$NGINX_PORT" nginx -c "$TMP/nginx.conf" -e "$TMP/nginx/error.log"

# Sanity: the chain answers 200 end to end before anything is measured.
check() {
    local what=$1 expect=$2
    shift 2
    local code
    code=$(curl -s -o "$TMP/check.out" -w '%{http_code}' --max-time 5 "$@") || true
    [[ $code == "$expect" ]] || die "$what answered $code (expected $expect): $(head -c 300 "$TMP/check.out")"
}

CHAT=(-X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $KEY" --data-binary "@$TMP/chat.json")
check "mock" 200 "${CHAT[@]}" "http://$HOST:$MOCK_PORT/v1/chat/completions"
check "nginx" 200 "${CHAT[@]}" "http://$HOST:$NGINX_PORT/v1/chat/completions"

log "references: direct and nginx"
run "direct: POST /v1/chat/completions" "$MOCK_PORT" POST /v1/chat/completions "$TMP/chat.json" "$KEY"
run "nginx proxy_pass: POST /v1/chat/completions" "$NGINX_PORT" POST /v1/chat/completions "$TMP/chat.json" "$KEY"
run "direct: GET /v1/models" "$MOCK_PORT" GET /v1/models
run "nginx proxy_pass: GET /v1/models" "$NGINX_PORT" GET /v1/models

LAT_ROWS=()
for T in $PROXY_THREADS_LIST; do
    log "Pingora-based proxies with $T thread(s)"
    start bare "$BARE_PORT" "$BIN/bare_pingora" --listen "$HOST:$BARE_PORT" --upstream "$HOST:$MOCK_PORT" --threads "$T"
    bare_pid=$LAST_PID
    mkdir -p "$TMP/data-$T"
    start medgate "$MEDGATE_PORT" env MEDGATE_PROXY_THREADS="$T" RUST_LOG=warn \
        "$BIN/medgate" proxy --config "$TMP/gateway.yaml" --proxy-listen "$HOST:$MEDGATE_PORT" --data-dir "$TMP/data-$T"
    medgate_pid=$LAST_PID
    for _ in $(seq 1 100); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$HOST:$MEDGATE_PORT/readyz") == 200 ]] && break
        sleep 0.1
    done
    check "bare pingora" 200 "${CHAT[@]}" "http://$HOST:$BARE_PORT/v1/chat/completions"
    check "medgate inference" 200 "${CHAT[@]}" "http://$HOST:$MEDGATE_PORT/v1/chat/completions"
    check "medgate /v1/models" 200 -H "Authorization: Bearer $KEY" "http://$HOST:$MEDGATE_PORT/v1/models"
    check "medgate plain route" 200 "http://$HOST:$MEDGATE_PORT/plain/models"
    grep -q '"mock-echo"' "$TMP/check.out" || die "the plain route did not reach the mock: $(head -c 300 "$TMP/check.out")"

    run "bare Pingora ($T thr): POST /v1/chat/completions" "$BARE_PORT" POST /v1/chat/completions "$TMP/chat.json" "$KEY"
    run "medgate inference ($T thr): POST /v1/chat/completions" "$MEDGATE_PORT" POST /v1/chat/completions "$TMP/chat.json" "$KEY"
    run "bare Pingora ($T thr): GET /v1/models" "$BARE_PORT" GET /v1/models
    run "medgate plain route ($T thr): GET /plain/models" "$MEDGATE_PORT" GET /plain/models
    run "medgate local ($T thr): GET /v1/models with key" "$MEDGATE_PORT" GET /v1/models "" "$KEY"

    # p99 added latency at half of medgate's saturating load: wrk (no wrk2 in Debian) with a
    # per-connection delay between requests, same offered load for direct and medgate.
    sat=$(rps_of "medgate inference ($T thr): POST /v1/chat/completions")
    delay=10
    lat_conns=$(awk -v r="$sat" -v d="$delay" 'BEGIN { c = int(r / 2 * (d + 0.3) / 1000 + 0.5); print (c < 1 ? 1 : c) }')
    run "half load ($T thr), direct" "$MOCK_PORT" POST /v1/chat/completions "$TMP/chat.json" "$KEY" "$lat_conns" "$delay"
    run "half load ($T thr), bare Pingora" "$BARE_PORT" POST /v1/chat/completions "$TMP/chat.json" "$KEY" "$lat_conns" "$delay"
    run "half load ($T thr), medgate inference" "$MEDGATE_PORT" POST /v1/chat/completions "$TMP/chat.json" "$KEY" "$lat_conns" "$delay"
    LAT_ROWS+=("$T|$sat|$lat_conns|$delay")

    stop_pids "$bare_pid" "$medgate_pid"
    forget_pids "$bare_pid" "$medgate_pid"
done

# ---------------------------------------------------------------------------------------------
fmt_ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
verdict() { awk -v x="$1" -v lim="$2" -v dir="$3" 'BEGIN { ok = (dir == "ge") ? (x >= lim) : (x <= lim); print (ok ? "met" : "NOT met") }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

SECTION=$TMP/section.md
{
    echo "<!-- load:begin (written by benches/load.sh; do not edit by hand) -->"
    echo "## Load scenario"
    echo
    echo "- Command: \`bash benches/load.sh\` (DURATION=${DURATION}s per measured run after a ${WARMUP}s warm-up, \`wrk -t$WRK_THREADS -c$CONNECTIONS --latency\`, PROXY_THREADS_LIST=\"$PROXY_THREADS_LIST\", nginx $NGINX_WORKERS workers)"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`$(git diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes')"
    echo "- Machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); load average before / after the run: $LOADAVG / $(cut -d" " -f1-3 /proc/loadavg)"
    echo "- Tools: $(wrk --version 2>&1 | head -1 | awk '{ print "wrk", $2 }'), $(nginx -v 2>&1 | sed 's/nginx version: //'), Pingora $(awk '/^name = "pingora"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")"
    echo "- Everything (wrk, mock upstream, proxies) shares the same $(nproc) cores, on 127.0.0.1."
    echo "- Request: POST /v1/chat/completions, $(wc -c <"$TMP/chat.json") byte JSON chat body with a bearer key; the mock upstream answers a ~0.4 KB JSON completion with Content-Length. medgate's model \`$MODEL\` maps to upstream model \`mock-echo\`, so medgate rewrites the body on every request."
    echo "- Plain route: a generic route of the static gateway file (\`/plain\` with strip_prefix, to \`http://$HOST:$MOCK_PORT/v1\`, no plugins), so medgate's GET /plain/models and the references' GET /v1/models reach the mock as the same GET /v1/models (a ~0.1 KB JSON list)."
    echo "- medgate's access log is on for every request (\`access_log_sample_rate: 1.0\`, the default); in static mode usage events and access-log entries go to spool files in the data directory."
    echo
    echo "### Saturating throughput ($CONNECTIONS connections)"
    echo
    echo "| Scenario | Req/s | p50 ms | p99 ms | non-2xx | socket errors | vs bare Pingora, same threads |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    while IFS='|' read -r label rps p50 p99 non2xx errors _; do
        [[ $label == half\ load* ]] && continue
        ref=""
        if [[ $label =~ \(([0-9]+)\ thr\) ]]; then
            t=${BASH_REMATCH[1]}
            case $label in
                "medgate inference"*) ref=$(ratio "$rps" "$(rps_of "bare Pingora ($t thr): POST /v1/chat/completions")")x ;;
                "medgate plain route"*) ref=$(ratio "$rps" "$(rps_of "bare Pingora ($t thr): GET /v1/models")")x ;;
                "medgate local"*) ref="(local answer, no upstream)" ;;
            esac
        fi
        echo "| $label | $rps | $(fmt_ms "$p50") | $(fmt_ms "$p99") | $non2xx | $errors | $ref |"
    done <"$TMP/rows"
    echo
    echo "### p99 added latency at half of medgate's saturating load"
    echo
    echo "No wrk2 in Debian: wrk with a ${delay:-10} ms pause per connection between requests, the same offered load for every row (closed loop, so this understates queueing compared to a constant-rate tool)."
    echo
    echo "| Threads | medgate saturating req/s | connections | target | req/s | p50 ms | p99 ms | p99 added over direct, ms |"
    echo "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
    for r in "${LAT_ROWS[@]}"; do
        IFS='|' read -r t sat conns _ <<<"$r"
        d="half load ($t thr), direct"
        for target in direct "bare Pingora" "medgate inference"; do
            l="half load ($t thr), $target"
            p50=$(awk -F'|' -v l="$l" '$1 == l { print $3 }' "$TMP/rows")
            added=$(awk -v a="$(p99_of "$l")" -v b="$(p99_of "$d")" 'BEGIN { printf "%.2f", (a - b) / 1000 }')
            [[ $target == direct ]] && added="-"
            echo "| $t | $sat | $conns | $target | $(rps_of "$l") | $(fmt_ms "$p50") | $(fmt_ms "$(p99_of "$l")") | $added |"
        done
    done
    echo
    echo "### Against DESIGN.md §8"
    echo
    echo "| Threads | plain route >= 0.95x bare Pingora | inference chain >= 0.8x bare Pingora | p99 added <= 1 ms at half load |"
    echo "| ---: | --- | --- | --- |"
    for r in "${LAT_ROWS[@]}"; do
        IFS='|' read -r t _ <<<"$r"
        pr=$(ratio "$(rps_of "medgate plain route ($t thr): GET /plain/models")" "$(rps_of "bare Pingora ($t thr): GET /v1/models")")
        ir=$(ratio "$(rps_of "medgate inference ($t thr): POST /v1/chat/completions")" "$(rps_of "bare Pingora ($t thr): POST /v1/chat/completions")")
        added=$(awk -v a="$(p99_of "half load ($t thr), medgate inference")" -v b="$(p99_of "half load ($t thr), direct")" 'BEGIN { printf "%.2f", (a - b) / 1000 }')
        echo "| $t | ${pr}x: $(verdict "$pr" 0.95 ge) | ${ir}x: $(verdict "$ir" 0.8 ge) | ${added} ms: $(verdict "$added" 1 le) |"
    done
    echo "<!-- load:end -->"
} >"$SECTION.tmp"

# Write the section into RESULTS.md, replacing an earlier one, keeping everything else.
# shellcheck source=benches/section.sh
source "$ROOT/benches/section.sh"
write_section load "$SECTION.tmp" "$RESULTS"
log "wrote $RESULTS"
