# Shared by scripts/stack, scripts/test and scripts/bench. Source it; do not run it.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Per machine, not per checkout: the ports are per machine too.
STATE_DIR="${KRATOS_PASSKEYS_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/kratos-passkeys}"
LOG_DIR="$STATE_DIR/logs"
PID_DIR="$STATE_DIR/pids"
mkdir -p "$LOG_DIR" "$PID_DIR"

PG_HOST=127.0.0.1
PG_PORT="${PG_PORT:-5432}"
PG_USER=kratos_passkeys
PG_PASSWORD=kratos_passkeys
pg_url() { echo "postgres://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$1"; }

# Development-only secrets; production sets its own through the environment.
export KRATOS_COOKIE_SECRET="${KRATOS_COOKIE_SECRET:-dev-cookie-secret-0123456789abcdef}"
export KRATOS_CIPHER_SECRET="${KRATOS_CIPHER_SECRET:-dev-cipher-secret-0123456789abcd}"
export WEBHOOK_API_KEY="${WEBHOOK_API_KEY:-dev-webhook-key-0123456789}"
# whsec_ and the base64 of "demo event receiver: not a secret" (33 bytes).
EVENT_RECEIVER_SECRET="${EVENT_RECEIVER_SECRET:-whsec_ZGVtbyBldmVudCByZWNlaXZlcjogbm90IGEgc2VjcmV0}"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have_apt_package() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

apt_install() {
  local missing=()
  for p in "$@"; do have_apt_package "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then die "need root to install ${missing[*]}"; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# Waits until URL answers 2xx, up to $2 seconds.
wait_http() {
  local url=$1 timeout=${2:-60} i=0
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -ge "$((timeout * 4))" ] && return 1
    sleep 0.25
  done
}

pid_alive() { [ -f "$PID_DIR/$1.pid" ] && kill -0 "$(cat "$PID_DIR/$1.pid")" 2>/dev/null; }

stop_process() {
  local name=$1
  if pid_alive "$name"; then
    local pid
    pid=$(cat "$PID_DIR/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
  fi
  rm -f "$PID_DIR/$name.pid"
}

# --- PostgreSQL ------------------------------------------------------------

pg_version() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }

psql_admin() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qtA "$@"; }

ensure_postgres() {
  apt_install postgresql libpq-dev curl
  local v
  v=$(pg_version)
  [ -n "$v" ] || die "PostgreSQL is not installed"
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$v main$"; then
    pg_createcluster "$v" main >&2
  fi
  if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
    log "starting PostgreSQL $v"
    pg_ctlcluster "$v" main start >&2
    for _ in $(seq 1 60); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 0.5; done
  fi
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || die "PostgreSQL does not answer on $PG_HOST:$PG_PORT"
  if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'")" != "1" ]; then
    psql_admin -c "CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
  fi
}

ensure_database() {
  local db=$1
  if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname='$db'")" != "1" ]; then
    psql_admin -c "CREATE DATABASE $db OWNER $PG_USER"
    log "created database $db"
  fi
}

# --- Kratos ----------------------------------------------------------------

# The Kratos release every script runs: v1.3.1 unless KRATOS_VERSION says
# otherwise (v25.4.0, v26.2.0, or next: the development branch's snapshot;
# see scripts/build-kratos).
KRATOS_VERSION="${KRATOS_VERSION:-v1.3.1}"
export KRATOS_VERSION
kratos_bin() { "$REPO/scripts/build-kratos" "$KRATOS_VERSION"; }

# The version string a Kratos of $KRATOS_VERSION reports: the release
# itself, except for a development snapshot (next reports its snapshot's
# name, such as master-2026-07-29).
kratos_expected_version() { "$REPO/scripts/build-kratos" --reports "$KRATOS_VERSION"; }

# The release a running Kratos reports on its admin /version.
kratos_running_version() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/admin/version" 2>/dev/null |
    sed -n 's/.*"version":"\([^"]*\)".*/\1/p'
}

# Kratos cannot override one element of an array through the environment,
# so the web hooks of kratos/kratos.yml (after registration and after
# settings) are restated in an overlay configuration file with this
# instance's webhook target and key.
write_hooks_overlay() {
  local hooks=${2%/after-registration}
  cat >"$1" <<YAML
selfservice:
  flows:
    registration:
      after:
        password:
          hooks:
            - hook: session
$(web_hook_yaml "$hooks/after-registration" after-registration.jsonnet)
    settings:
      after:
        profile:
          hooks:
$(web_hook_yaml "$hooks/after-settings" after-settings.jsonnet)
YAML
}

# web_hook_yaml URL BODY_FILE: one asynchronous web_hook to the service,
# authenticated with the webhook key, as a hooks list entry.
web_hook_yaml() {
  cat <<YAML
            - hook: web_hook
              config:
                url: $1
                method: POST
                body: file://./$2
                response:
                  ignore: true
                auth:
                  type: api_key
                  config:
                    name: X-Webhook-Key
                    value: $WEBHOOK_API_KEY
                    in: header
YAML
}

# start_kratos NAME PUBLIC_PORT ADMIN_PORT DATABASE WEBHOOK_URL FRONTEND_ORIGIN [ENV=VALUE...]
#
# KRATOS_CONFIG names another configuration file (default kratos/kratos.yml;
# Kratos runs in its directory). An empty WEBHOOK_URL keeps that file's
# hooks as they are. KRATOS_WATCH_COURIER=1 runs the courier in the same
# process (for a configuration whose courier delivers somewhere).
start_kratos() {
  local name=$1 public=$2 admin=$3 db=$4 webhook=$5 frontend=$6
  shift 6
  if wait_http "http://127.0.0.1:$admin/admin/health/ready" 1; then
    local running
    running=$(kratos_running_version "$admin")
    if [ "$running" = "$(kratos_expected_version)" ]; then
      log "$name already answers on 127.0.0.1:$admin; reusing it"
      return 0
    fi
    log "$name answers on 127.0.0.1:$admin with Kratos ${running:-of unknown release}, not $KRATOS_VERSION; replacing it"
    stop_process "$name"
    wait_http "http://127.0.0.1:$admin/admin/health/ready" 1 &&
      die "port $admin is held by a Kratos this script did not start"
  fi
  # A database per release: a newer Kratos migrates its database forward,
  # and an older one cannot run on it afterwards.
  [ "$KRATOS_VERSION" = v1.3.1 ] || db="${db}_$(tr . _ <<<"${KRATOS_VERSION#v}")"
  local bin
  bin=$(kratos_bin) || die "Kratos $KRATOS_VERSION could not be built"
  local expected
  expected=$(kratos_expected_version)
  grep -q "Version:[[:space:]]*$expected\$" <<<"$("$bin" version 2>/dev/null)" || die "$bin is not Kratos $KRATOS_VERSION ($expected)"
  ensure_database "$db"
  local env=(
    # A pool that keeps its connections: with Kratos's defaults (2 idle of
    # at most 4 on 2 cores) every burst past two concurrent queries opens a
    # new connection, and each costs PostgreSQL a fork and a SCRAM exchange.
    "DSN=$(pg_url "$db")?sslmode=disable&max_conns=16&max_idle_conns=16"
    "SERVE_PUBLIC_HOST=127.0.0.1" "SERVE_PUBLIC_PORT=$public"
    "SERVE_ADMIN_HOST=127.0.0.1" "SERVE_ADMIN_PORT=$admin"
    "SERVE_PUBLIC_BASE_URL=http://localhost:$public/"
    "SERVE_ADMIN_BASE_URL=http://127.0.0.1:$admin/"
    "SERVE_PUBLIC_CORS_ALLOWED_ORIGINS=$frontend"
    "SELFSERVICE_DEFAULT_BROWSER_RETURN_URL=$frontend/"
    "SELFSERVICE_ALLOWED_RETURN_URLS=$frontend"
    "SELFSERVICE_FLOWS_ERROR_UI_URL=$frontend/"
    "SELFSERVICE_FLOWS_SETTINGS_UI_URL=$frontend/"
    "SELFSERVICE_FLOWS_RECOVERY_UI_URL=$frontend/"
    "SELFSERVICE_FLOWS_LOGIN_UI_URL=$frontend/"
    "SELFSERVICE_FLOWS_REGISTRATION_UI_URL=$frontend/"
    "SELFSERVICE_FLOWS_LOGOUT_AFTER_DEFAULT_BROWSER_RETURN_URL=$frontend/"
    "SECRETS_COOKIE=$KRATOS_COOKIE_SECRET"
    "SECRETS_CIPHER=$KRATOS_CIPHER_SECRET"
    "$@"
  )
  local config=${KRATOS_CONFIG:-$REPO/kratos/kratos.yml}
  local configs=(-c "$config") flags=(--dev)
  if [ -n "$webhook" ]; then
    local overlay="$STATE_DIR/$name.hooks.yml"
    write_hooks_overlay "$overlay" "$webhook"
    configs+=(-c "$overlay")
  fi
  [ "${KRATOS_WATCH_COURIER:-0}" = 1 ] && flags+=(--watch-courier)
  # What differs between releases: v25+ moved the migration to `migrate sql
  # up` (plain `migrate sql` is deprecated there and absent from v1.3.1's
  # successor syntax), and each release warns unless the configuration
  # names its own version (kratos/kratos.yml says v1.3.1). A development
  # snapshot's name is no semantic version, which the configuration's
  # `version` must be: it runs with the file's (and warns).
  local migrate=(migrate sql -e --yes)
  [ "$KRATOS_VERSION" = v1.3.1 ] || migrate=(migrate sql up -e --yes)
  case "$KRATOS_VERSION" in v*) env+=("VERSION=$KRATOS_VERSION") ;; esac
  log "migrating $name (database $db)"
  env "${env[@]}" "$bin" "${migrate[@]}" >>"$LOG_DIR/$name.log" 2>&1 ||
    die "Kratos migration failed; see $LOG_DIR/$name.log"
  log "starting $name (Kratos $KRATOS_VERSION) on 127.0.0.1:$public (public) / 127.0.0.1:$admin (admin)"
  (cd "$(dirname "$config")" && exec env "${env[@]}" "$bin" serve "${configs[@]}" "${flags[@]}") \
    >>"$LOG_DIR/$name.log" 2>&1 &
  echo $! >"$PID_DIR/$name.pid"
  wait_http "http://127.0.0.1:$admin/admin/health/ready" 60 ||
    die "$name did not become ready; see $LOG_DIR/$name.log"
}

# --- Jaeger ----------------------------------------------------------------

# start_jaeger NAME QUERY_PORT OTLP_GRPC_PORT OTLP_HTTP_PORT [QUERY_GRPC_PORT]
#
# Jaeger v2 (scripts/build-jaeger) with in-memory storage on loopback: OTLP
# in on OTLP_GRPC_PORT/OTLP_HTTP_PORT, the query API (/api/traces) on
# QUERY_PORT. Only these ports (and QUERY_GRPC_PORT, default QUERY_PORT+1):
# its all-in-one defaults would also take 5778, 8888, 9411, 13133, 14250...
start_jaeger() {
  local name=$1 query=$2 grpc=$3 http=$4 query_grpc=${5:-$(($2 + 1))}
  if wait_http "http://127.0.0.1:$query/api/services" 1; then
    log "$name already answers on 127.0.0.1:$query; reusing it"
    return 0
  fi
  local bin
  bin=$("$REPO/scripts/build-jaeger") || die "Jaeger could not be built (scripts/build-jaeger)"
  local config="$STATE_DIR/$name.yaml"
  cat >"$config" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: $name
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memory
    http:
      endpoint: 127.0.0.1:$query
    grpc:
      endpoint: 127.0.0.1:$query_grpc
  jaeger_storage:
    backends:
      memory:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$grpc
      http:
        endpoint: 127.0.0.1:$http
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory
YAML
  log "starting $name (Jaeger) on 127.0.0.1:$query (query), 127.0.0.1:$grpc/$http (OTLP gRPC/HTTP)"
  "$bin" --config "$config" >>"$LOG_DIR/$name.log" 2>&1 &
  echo $! >"$PID_DIR/$name.pid"
  wait_http "http://127.0.0.1:$query/api/services" 60 ||
    die "$name did not become ready; see $LOG_DIR/$name.log"
}

# The Kratos settings (environment) that send its spans to the OTLP/HTTP
# receiver on 127.0.0.1:PORT, every trace sampled; the same keys in v1.3.1,
# v25.4.0 and v26.2.0 (ory/x otelx).
kratos_tracing_env() {
  echo TRACING_PROVIDER=otel
  echo "TRACING_SERVICE_NAME=${2:-kratos}"
  echo "TRACING_PROVIDERS_OTLP_SERVER_URL=127.0.0.1:$1"
  echo TRACING_PROVIDERS_OTLP_INSECURE=true
  echo TRACING_PROVIDERS_OTLP_SAMPLING_SAMPLING_RATIO=1
}

# --- kratos-passkeys -------------------------------------------------------

# Builds the service (debug unless KRATOS_PASSKEYS_PROFILE=release) and prints
# the binary's path.
service_bin() {
  local profile=${KRATOS_PASSKEYS_PROFILE:-debug} flags=()
  [ "$profile" = release ] && flags=(--release)
  (cd "$REPO" && cargo build --quiet --locked --bin kratos-passkeys "${flags[@]}") >&2
  local target_dir=${CARGO_TARGET_DIR:-$REPO/target}
  echo "$target_dir/$profile/kratos-passkeys"
}

# start_service NAME PUBLIC_PORT ADMIN_PORT DATABASE KRATOS_PUBLIC_PORT KRATOS_ADMIN_PORT FRONTEND_ORIGIN [ENV=VALUE...]
#
# Runs this checkout's service unless START_SERVICE_BIN names another binary
# (scripts/bench's baseline build); START_SERVICE_HOME is then the checkout
# it runs from and takes its config/ from (default: this one).
start_service() {
  local name=$1 public=$2 admin=$3 db=$4 kpublic=$5 kadmin=$6 frontend=$7
  shift 7
  local home=${START_SERVICE_HOME:-$REPO}
  if wait_http "http://127.0.0.1:$public/health/alive" 1; then
    log "$name already answers on 127.0.0.1:$public; reusing it"
    return 0
  fi
  ensure_database "$db"
  local bin=${START_SERVICE_BIN:-}
  [ -n "$bin" ] || bin=$(service_bin)
  local env=(
    "KRATOS_PASSKEYS_CONFIG_DIR=$home/config"
    "KRATOS_PASSKEYS__PUBLIC__PORT=$public"
    "KRATOS_PASSKEYS__ADMIN__PORT=$admin"
    # Loopback to the local PostgreSQL, like Kratos's DSN: no TLS handshake.
    "KRATOS_PASSKEYS__DATABASE__URL=$(pg_url "$db")?sslmode=disable"
    "KRATOS_PASSKEYS__KRATOS__PUBLIC_URL=http://127.0.0.1:$kpublic/"
    "KRATOS_PASSKEYS__KRATOS__BROWSER_URL=http://localhost:$kpublic/"
    "KRATOS_PASSKEYS__KRATOS__ADMIN_URL=http://127.0.0.1:$kadmin/"
    "KRATOS_PASSKEYS__WEBAUTHN__ORIGINS=$frontend"
    "KRATOS_PASSKEYS__CORS__ALLOWED_ORIGINS=$frontend"
    "KRATOS_PASSKEYS__SESSIONS__REFRESH_RETURN_TO=$frontend/"
    "KRATOS_PASSKEYS__WEBHOOK__API_KEY=$WEBHOOK_API_KEY"
    "$@"
  )
  log "migrating $name (database $db)"
  env "${env[@]}" "$bin" migrate >>"$LOG_DIR/$name.log" 2>&1 ||
    die "migration failed; see $LOG_DIR/$name.log"
  log "starting $name on 127.0.0.1:$public (public) / 127.0.0.1:$admin (admin)"
  (cd "$home" && exec env "${env[@]}" "$bin" serve) >>"$LOG_DIR/$name.log" 2>&1 &
  echo $! >"$PID_DIR/$name.pid"
  wait_http "http://127.0.0.1:$public/health/ready" 60 ||
    die "$name did not become ready; see $LOG_DIR/$name.log"
  wait_http "http://127.0.0.1:$admin/health/ready" 10 ||
    die "$name's admin listener did not become ready; see $LOG_DIR/$name.log"
}

# --- The demo's event receiver ----------------------------------------------

# start_event_receiver NAME PORT
#
# Runs scripts/event-receiver.py on 127.0.0.1:PORT with EVENT_RECEIVER_SECRET;
# it prints one line per event into $LOG_DIR/NAME.log. A service delivers
# to it with KRATOS_PASSKEYS__EVENTS__ENDPOINTS=$(event_endpoints ENDPOINT PORT).
start_event_receiver() {
  local name=$1 port=$2
  if wait_http "http://127.0.0.1:$port/events" 1; then
    # Reused only when it is ours: another receiver may hold another secret.
    pid_alive "$name" || die "port $port is held by something this script did not start"
    log "$name already answers on 127.0.0.1:$port; reusing it"
    return 0
  fi
  command -v python3 >/dev/null || apt_install python3
  log "starting $name on 127.0.0.1:$port"
  (exec env "EVENT_RECEIVER_SECRET=$EVENT_RECEIVER_SECRET" \
    python3 -u "$REPO/scripts/event-receiver.py" --host 127.0.0.1 --port "$port") \
    >>"$LOG_DIR/$name.log" 2>&1 &
  echo $! >"$PID_DIR/$name.pid"
  wait_http "http://127.0.0.1:$port/events" 10 ||
    die "$name did not become ready; see $LOG_DIR/$name.log"
}

# event_endpoints ENDPOINT PORT: the KRATOS_PASSKEYS__EVENTS__ENDPOINTS value
# (one endpoint, named ENDPOINT in metrics and the audit) for a receiver on PORT.
event_endpoints() {
  printf '[{"name":"%s","url":"http://127.0.0.1:%s/events","secret":"%s"}]' \
    "$1" "$2" "$EVENT_RECEIVER_SECRET"
}
