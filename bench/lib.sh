# Shared helpers of the bench scripts (sourced, not run).
# The benchmark kit lives beside the repository, in ../shared/bench (not part of the repo).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
KIT=${KIT:-$(cd "$REPO/../shared/bench" 2>/dev/null && pwd || true)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
DTC=${DTC:-$CARGO_TARGET_DIR/release/dtc}

need_kit() {
    [[ -n "$KIT" && -x "$KIT/run.sh" ]] || {
        echo "benchmark kit not found: expected ../shared/bench/run.sh beside the repository (or set KIT=)" >&2
        exit 1
    }
}

build_dtc() {
    if [[ "${NO_BUILD:-0}" != 1 ]]; then
        (cd "$REPO" && cargo build --release --bin dtc) >&2
    fi
    [[ -x "$DTC" ]] || { echo "no dtc binary at $DTC" >&2; exit 1; }
}

# write_config FILE JOURNAL_DIR DURABILITY [LISTEN] [NODE PORTS...]  (ROUTES=FILE adds routes;
# PIPELINE=1 pipelines the unrouted writes, writes.pipeline_unmatched, and every route's)
# A dtc config for the kit's backends: nodes 127.0.0.1:18001-18003 unless ports are given,
# admin off, health probing on (the kit's nginx answers GET /healthz with 200). A ROUTES file
# with [[nodes]] of its own (bench/routes/tls-nodes.toml) replaces the node list.
write_config() {
    local file=$1 dir=$2 durability=$3 listen=${4:-127.0.0.1:18100}
    shift 4 2>/dev/null || shift $#
    local ports=("$@")
    [[ ${#ports[@]} -gt 0 ]] || ports=(18001 18002 18003)
    {
        echo "[listen]"
        echo "address = \"$listen\""
        echo "admin = \"\""
        echo
        local p
        if [[ -z "${ROUTES:-}" ]] || ! grep -q '^\[\[nodes\]\]' "$ROUTES"; then
            for p in "${ports[@]}"; do
                echo "[[nodes]]"
                echo "name = \"node-$p\""
                echo "url = \"http://127.0.0.1:$p\""
                echo
            done
        fi
        echo "[limits]"
        echo "max_connections = 8192"
        echo
        echo "[writes]"
        echo "unmatched = \"replicate\""
        [[ -z "${PIPELINE:-}" ]] || echo "pipeline_unmatched = true"
        echo
        echo "[journal]"
        echo "dir = \"$dir\""
        echo "durability = \"$durability\""
        # ROUTES=FILE appends a file of [[routes]] (bench/routes/).
        if [[ -n "${ROUTES:-}" && -n "${PIPELINE:-}" ]]; then
            echo; sed '/^\[\[routes\]\]/a pipeline = true' "$ROUTES"
        elif [[ -n "${ROUTES:-}" ]]; then echo; cat "$ROUTES"; fi
    } > "$file.tmp"
    mv "$file.tmp" "$file"
}

# wrk ... | bench_fields [LABEL...] -- FIELD...: the kit's BENCHJSON line of a wrk run as one
# tab-separated row, the labels first. FIELD is a key of the line (rps printed rounded, the
# others as integers) or `errors`, the sum of its err_* counts. Prints nothing if wrk printed no
# such line.
bench_fields() {
    python3 -c 'import sys, json
args = sys.argv[1:]
cut = args.index("--")
labels, fields = args[:cut], args[cut + 1:]
for line in sys.stdin:
    if line.startswith("BENCHJSON "):
        j = json.loads(line[10:])
        j["errors"] = sum(v for k, v in j.items() if k.startswith("err_"))
        print("\t".join(labels + ["%.0f" % j[f] if f == "rps" else "%d" % j[f] for f in fields]))' "$@"
}

# wait_ready PORT: polls GET /kv/bench-key on 127.0.0.1:PORT until it answers (5 s at most).
wait_ready() {
    local _
    for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$1/kv/bench-key" 2>/dev/null && return 0; sleep 0.05; done
    echo "nothing answers on 127.0.0.1:$1" >&2
    return 1
}

# start_nginx_peer NAME TAG: the kit's nginx-NAME peer (rr, mirror-ka, ...) with WORKERS (1)
# workers, in a process group of its own; sets PEER_PID. TAG names its error log and pid file.
PEER_PID=
start_nginx_peer() {
    mkdir -p "/tmp/bench-nginx-tmp/$1"/{body,proxy,fastcgi,uwsgi,scgi}
    setsid nginx -c "$KIT/conf/nginx-$1.nginx.conf" -e "/tmp/bench-$2-$1.error.log" \
        -g "daemon off; worker_processes ${WORKERS:-1}; pid /tmp/bench-$2-$1.pid;" >/dev/null 2>&1 &
    PEER_PID=$!
}

# The peers besides nginx, each a round-robin reverse proxy with keep-alive to the kit's three
# nodes (a write goes to one node): haproxy (the kit's haproxy.cfg), Caddy (the kit's Caddyfile,
# Debian's caddy 2.6, Go) and a proxy on Cloudflare's pingora (bench/pingora/, Rust).
declare -A PEER_PORTS=([nginx-rr]=18101 [haproxy]=18102 [nginx-mirror-ka]=18104 [caddy]=18105 [pingora]=18106)
PINGORA=${PINGORA:-$CARGO_TARGET_DIR/pingora/release/dtc-pingora-peer}

# build_pingora: the pingora peer, its own cargo workspace (bench/pingora/; needs cmake for zlib-ng).
build_pingora() {
    if [[ "${NO_BUILD:-0}" != 1 ]]; then
        (cd "$BENCH_DIR/pingora" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR/pingora cargo build --release --locked) >&2
    fi
    [[ -x "$PINGORA" ]] || { echo "no pingora peer at $PINGORA (bench/pingora: cargo build --release)" >&2; exit 1; }
}

# start_peer NAME TAG: one of PEER_PORTS' peers with WORKERS (1) workers/threads, in a process
# group of its own; sets PEER_PID. TAG names nginx's logs.
start_peer() {
    local w=${WORKERS:-1}
    case $1 in
        nginx-*) start_nginx_peer "${1#nginx-}" "$2"; return ;;
        haproxy)
            command -v haproxy >/dev/null || { echo "missing tool: haproxy (apt-get install -y haproxy)" >&2; exit 1; }
            setsid env BENCH_NBTHREAD="$w" haproxy -db -f "$KIT/conf/haproxy.cfg" -p "/tmp/bench-$2-haproxy.pid" >/dev/null 2>&1 & ;;
        caddy)
            command -v caddy >/dev/null || { echo "missing tool: caddy (apt-get install -y caddy)" >&2; exit 1; }
            setsid env GOMAXPROCS="$w" caddy run --config "$KIT/conf/Caddyfile" --adapter caddyfile >/dev/null 2>&1 & ;;
        pingora)
            setsid "$PINGORA" 127.0.0.1:18106 127.0.0.1:18001,127.0.0.1:18002,127.0.0.1:18003 "$w" >/dev/null 2>&1 & ;;
        *) echo "unknown peer $1 (one of: ${!PEER_PORTS[*]})" >&2; exit 2 ;;
    esac
    PEER_PID=$!
}

# start_backends: the kit's three nginx nodes on 18001-18003 (for scripts that do not run the kit).
BACKENDS_PID=
start_backends() {
    need_kit
    rm -rf /tmp/bench-nginx-tmp/backends; mkdir -p /tmp/bench-nginx-tmp/backends
    setsid nginx -c "$KIT/conf/backends.nginx.conf" -e /tmp/bench-backends.error.log \
        -g "daemon off; worker_processes 1; pid /tmp/bench-backends-own.pid;" \
        >/tmp/bench-backends.out 2>&1 &
    BACKENDS_PID=$!
    local p
    for p in 18001 18002 18003; do
        wait_ready "$p"
    done
}
stop_backends() {
    [[ -n "$BACKENDS_PID" ]] && kill -TERM -- "-$BACKENDS_PID" 2>/dev/null || true
    BACKENDS_PID=
}

# with_backends TAG: for a script that measures one server at a time against the kit's
# backends. Makes a work dir ($WORK, /tmp/dtc-TAG.*), starts the backends, and on exit stops
# the server being measured ($PID, a process group of its own), the backends, and removes $WORK.
WORK= PID=
with_backends() {
    WORK=$(mktemp -d "/tmp/dtc-$1.XXXXXX")
    trap stop_all EXIT
    start_backends
}
stop_all() {
    [[ -n "$PID" ]] && kill -TERM -- "-$PID" 2>/dev/null
    stop_tls_fronts; stop_otlp_sink; stop_backends; rm -rf "$WORK"
}
# stop_server: stops the server being measured ($PID) and waits for it.
stop_server() { kill -TERM -- "-$PID"; wait "$PID" 2>/dev/null || true; PID=; }

# cpu_ticks PID: the process's user + system time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_tls_fronts: nginx terminating TLS (1.3, ALPN h2 and http/1.1) on 127.0.0.1:18201-18203
# in front of the backends 18001-18003, with a test CA and certificate made by openssl in
# $TLS_DIR (/tmp/dtc-bench-tls, where bench/routes/tls-nodes.toml looks for ca.pem). Sets
# TLS_FRONTS_PID; stop_tls_fronts stops it.
TLS_DIR=/tmp/dtc-bench-tls TLS_FRONTS_PID=
start_tls_fronts() {
    mkdir -p "$TLS_DIR" /tmp/bench-nginx-tmp/tls/{body,proxy,fastcgi,uwsgi,scgi}
    if [[ ! -s "$TLS_DIR/node.pem" ]]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
            -subj /CN=bench-ca -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=node \
            -keyout "$TLS_DIR/node.key" -out "$TLS_DIR/node.csr" 2>/dev/null
        openssl x509 -req -in "$TLS_DIR/node.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
            -days 30 -extfile <(echo "subjectAltName=IP:127.0.0.1,DNS:localhost") \
            -out "$TLS_DIR/node.pem" 2>/dev/null
    fi
    {
        echo "worker_rlimit_nofile 16384; events { worker_connections 8192; }"
        echo "http { access_log off; keepalive_requests 1000000; keepalive_timeout 75s;"
        local d
        for d in body proxy fastcgi uwsgi scgi; do echo "${d}_temp_path /tmp/bench-nginx-tmp/tls/$d;" | sed 's/^body_/client_body_/'; done
        local i
        for i in 1 2 3; do
            echo "upstream n$i { server 127.0.0.1:1800$i; keepalive 64; }"
            echo "server { listen 127.0.0.1:1820$i ssl http2 backlog=4096;"
            echo "  ssl_certificate $TLS_DIR/node.pem; ssl_certificate_key $TLS_DIR/node.key;"
            echo "  ssl_protocols TLSv1.2 TLSv1.3;"
            echo "  location / { proxy_pass http://n$i; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
        done
        echo "}"
    } > "$TLS_DIR/fronts.nginx.conf"
    setsid nginx -c "$TLS_DIR/fronts.nginx.conf" -e /tmp/bench-tls-fronts.error.log \
        -g "daemon off; worker_processes ${TLS_WORKERS:-1}; pid /tmp/bench-tls-fronts.pid;" >/dev/null 2>&1 &
    TLS_FRONTS_PID=$!
    for i in 1 2 3; do
        local _
        for _ in $(seq 100); do curl -fsS --cacert "$TLS_DIR/ca.pem" -o /dev/null "https://127.0.0.1:1820$i/kv/bench-key" 2>/dev/null && break; sleep 0.05; done
    done
}
stop_tls_fronts() {
    [[ -n "$TLS_FRONTS_PID" ]] && kill -TERM -- "-$TLS_FRONTS_PID" 2>/dev/null || true
    TLS_FRONTS_PID=
}

# start_otlp_sink: an OTLP/HTTP collector stand-in on 127.0.0.1:18140 that reads each export
# and answers 200 (bench/routes/tracing.toml sends there). Sets OTLP_SINK_PID.
OTLP_SINK_PID=
start_otlp_sink() {
    setsid python3 "$BENCH_DIR/otlp-sink.py" 18140 >/dev/null 2>&1 &
    OTLP_SINK_PID=$!
}
stop_otlp_sink() {
    [[ -n "$OTLP_SINK_PID" ]] && kill -TERM -- "-$OTLP_SINK_PID" 2>/dev/null || true
    OTLP_SINK_PID=
}
