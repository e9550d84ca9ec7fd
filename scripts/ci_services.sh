#!/usr/bin/env bash
# Install (apt) and start PostgreSQL and mosquitto for the integration tests (and install Debian's
# Chromium + chromedriver for the browser tests, and start a local Ray cluster when Ray is
# installed), then export
# CROWDSIGHT_TEST_PG_URL, CROWDSIGHT_TEST_MQTT and CROWDSIGHT_TEST_RAY_ADDRESS.
#
# Meant for a fresh Debian machine (or container) where we are root and there is no systemd.
# Idempotent: running it twice reuses the running servers, the role and the database.
#
#   source scripts/ci_services.sh      # exports the variables into the calling shell
#   bash scripts/ci_services.sh        # prints the export lines (eval "$(...)" them)
#
# Sourcing does not change the caller's shell options (no `set -e` leaks out); failures are
# reported on stderr and the matching variable is simply not exported, so the tests that need
# the service skip with a reason instead of the whole CI run dying here.

_cs_log() { echo "[ci_services] $*" >&2; }

_cs_apt_install() {
    # Install only the packages that are missing; one apt-get update per run at most.
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        _cs_log "not root: cannot apt-get install ${missing[*]}"
        return 1
    fi
    _cs_log "installing ${missing[*]}"
    if [ -z "${_CS_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
        _CS_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
}

_cs_wait_port() {
    # _cs_wait_port HOST PORT SECONDS: poll until something listens (bash /dev/tcp).
    local host="$1" port="$2" tries=$(($3 * 5))
    while true; do
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
        [ "$tries" -le 0 ] && return 1
        sleep 0.2
        tries=$((tries - 1))
    done
}

_cs_postgres() {
    _cs_apt_install postgresql || return 1
    local version cluster=main
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
    if [ -z "$version" ]; then
        # The package is installed but the default cluster was not created (e.g. policy-rc.d).
        version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
        pg_createcluster "$version" "$cluster" >&2 || return 1
    fi
    if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" \
        '$1==v && $2==c && $4=="online" {found=1} END {exit !found}'; then
        _cs_log "starting PostgreSQL $version/$cluster"
        pg_ctlcluster "$version" "$cluster" start >&2 || return 1
    fi
    local port
    port="$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $3}')"
    port="${port:-5432}"
    _cs_wait_port 127.0.0.1 "$port" 30 || { _cs_log "PostgreSQL did not open $port"; return 1; }
    local psql=(runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA)
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='crowdsight'")" != "1" ]; then
        "${psql[@]}" -c "CREATE ROLE crowdsight LOGIN PASSWORD 'crowdsight' CREATEDB" >&2 \
            || return 1
    fi
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='crowdsight_test'")" \
        != "1" ]; then
        "${psql[@]}" -c "CREATE DATABASE crowdsight_test OWNER crowdsight" >&2 || return 1
    fi
    export CROWDSIGHT_TEST_PG_URL="postgresql+psycopg://crowdsight:crowdsight@127.0.0.1:$port/crowdsight_test"
}

_cs_mosquitto() {
    _cs_apt_install mosquitto || return 1
    if ! _cs_wait_port 127.0.0.1 1883 0; then
        local conf=/tmp/crowdsight-mosquitto.conf
        printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' >"$conf"
        _cs_log "starting mosquitto on 127.0.0.1:1883"
        # -d daemonizes; no systemd needed. Run as the mosquitto user when it exists.
        mosquitto -c "$conf" -d >&2 || return 1
    fi
    _cs_wait_port 127.0.0.1 1883 15 || { _cs_log "mosquitto did not open 1883"; return 1; }
    export CROWDSIGHT_TEST_MQTT="127.0.0.1:1883"
}

_cs_chromium() {
    # Debian's Chromium and its driver for the dashboard's browser tests (a browser build
    # cannot be downloaded here; selenium finds /usr/bin/chromedriver).
    _cs_apt_install chromium chromium-driver || return 1
    command -v chromedriver >/dev/null || { _cs_log "chromedriver missing after install"; return 1; }
}

_cs_ray() {
    # A real local Ray cluster on this machine for the Ray runner tests (needs crowdsight[ray] in
    # the active environment). Reused when one already answers on the port.
    command -v ray >/dev/null || { _cs_log "ray not installed (pip install 'crowdsight[ray]')"; return 1; }
    local port="${CROWDSIGHT_RAY_PORT:-6380}"
    if ! _cs_wait_port 127.0.0.1 "$port" 0; then
        _cs_log "starting a local Ray cluster on 127.0.0.1:$port"
        # Token authentication on (Ray's default since 2.5x): drivers read the token from
        # ~/.ray/auth_token. Older Rays wrote it in `ray start`; since 2.60 `ray start` only
        # reads it, so it is generated first (a no-op when one exists; Rays without the
        # command have no token auth to set up).
        if ray get-auth-token --help >/dev/null 2>&1; then
            RAY_AUTH_MODE=token ray get-auth-token --generate >/dev/null || return 1
        fi
        RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0 ray start --head --port="$port" \
            --num-cpus=2 --include-dashboard=false --disable-usage-stats >&2 || return 1
    fi
    export RAY_AUTH_MODE=token
    _cs_wait_port 127.0.0.1 "$port" 60 || { _cs_log "Ray did not open $port"; return 1; }
    export CROWDSIGHT_TEST_RAY_ADDRESS="127.0.0.1:$port"
}

_cs_postgres || _cs_log "PostgreSQL unavailable: PostgreSQL tests will skip"
_cs_mosquitto || _cs_log "mosquitto unavailable: MQTT tests will skip"
_cs_chromium || _cs_log "Chromium unavailable: browser tests will skip"
_cs_ray || _cs_log "Ray cluster unavailable: Ray tests will skip"

[ -n "${CROWDSIGHT_TEST_PG_URL:-}" ] && echo "export CROWDSIGHT_TEST_PG_URL=$CROWDSIGHT_TEST_PG_URL"
[ -n "${CROWDSIGHT_TEST_MQTT:-}" ] && echo "export CROWDSIGHT_TEST_MQTT=$CROWDSIGHT_TEST_MQTT"
[ -n "${CROWDSIGHT_TEST_RAY_ADDRESS:-}" ] && echo "export CROWDSIGHT_TEST_RAY_ADDRESS=$CROWDSIGHT_TEST_RAY_ADDRESS RAY_AUTH_MODE=token"
unset -f _cs_log _cs_apt_install _cs_wait_port _cs_postgres _cs_mosquitto _cs_chromium _cs_ray
# `return` when sourced, plain exit 0 when executed.
return 0 2>/dev/null || exit 0
