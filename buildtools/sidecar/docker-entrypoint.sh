#!/bin/sh
# Entrypoint of the LARA nginx sidecar.
#
# Checks APP_UPSTREAM (host:port of the app) as the build checks buildtools.nginx.upstream
# (buildtools.config.nginx_checks.check_upstream) and LARA_CACHE_STATUS (on or off: the
# X-Cache-Status header), writes both into the file nginx.conf includes, then runs the
# command (nginx by default; `docker run IMAGE nginx -t` checks the config). The app does not
# have to be up: nginx resolves the name per request through the configured resolver.
# Every refusal is one line on stderr and a non-zero exit.
set -eu

UPSTREAM_CONF=/etc/nginx/lara/upstream.conf

# fail CODE WORDS...: one line on stderr, then exit CODE.
fail() {
    code=$1
    shift
    echo "lara-nginx: $*" >&2
    exit "$code"
}

newline_char='
'
upstream_line=""
if [ -n "${APP_UPSTREAM:-}" ]; then
    # grep checks line by line: a value with a line break could pass with one good line and
    # carry directives on the others, so it is refused before grep sees it.
    newline='
'
    carriage_return=$(printf '\r')
    case "$APP_UPSTREAM" in
        *"$newline"* | *"$carriage_return"*)
            fail 64 "APP_UPSTREAM has a line break; give one host:port (e.g. app:3000)" ;;
    esac
    # A host name or IPv4 address, or an [IPv6] address, then a port 1-65535: nothing else can
    # reach the config file. LC_ALL=C: ASCII letters and digits only, whatever the locale.
    if ! printf '%s\n' "$APP_UPSTREAM" | LC_ALL=C grep -Eqx \
        '([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}'; then
        fail 64 "APP_UPSTREAM='$APP_UPSTREAM' is not host:port (e.g. app:3000)"
    fi
    port="${APP_UPSTREAM##*:}"
    if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
        fail 64 "APP_UPSTREAM='$APP_UPSTREAM' has port $port, not 1-65535 (e.g. app:3000)"
    fi
    upstream_line="map \"\" \$lara_upstream { default \"$APP_UPSTREAM\"; }"
else
    # No APP_UPSTREAM: the one the image was built with stays.
    upstream_line=$(grep -m1 '^map "" \$lara_upstream ' "$UPSTREAM_CONF" 2>/dev/null || true)
fi

# X-Cache-Status on responses: off unless asked (invoke up asks); the access log always says.
case "${LARA_CACHE_STATUS:-}" in
    *"$newline_char"* | *"$(printf '\r')"*)
        fail 64 "LARA_CACHE_STATUS has a line break; give on or off" ;;
esac
case "$(printf '%s' "${LARA_CACHE_STATUS:-off}" | tr '[:upper:]' '[:lower:]')" in
    on | 1 | true | yes) shown=1 ;;
    off | 0 | false | no | "") shown=0 ;;
    *) fail 64 "LARA_CACHE_STATUS='$LARA_CACHE_STATUS' is neither on nor off" ;;
esac

if [ -n "$upstream_line" ]; then
    wanted=$(printf '%s\n%s\n%s' \
        "# Written by the entrypoint from APP_UPSTREAM and LARA_CACHE_STATUS." \
        "$upstream_line" \
        "map \"\" \$lara_cache_status_shown { default \"$shown\"; }")
    # Leave the file alone when it already says so (works with a read-only root filesystem).
    if [ "$(cat "$UPSTREAM_CONF" 2>/dev/null)" != "$wanted" ]; then
        if ! { printf '%s\n' "$wanted" > "$UPSTREAM_CONF"; } 2>/dev/null; then
            fail 73 "cannot write $UPSTREAM_CONF as $(id -un) for APP_UPSTREAM='${APP_UPSTREAM:-}'" \
                "LARA_CACHE_STATUS='${LARA_CACHE_STATUS:-}' (mount a writable volume at" \
                "/etc/nginx/lara, or keep the built-in values)"
        fi
    fi
fi

# Unprivileged nginx binds port 80 through its file capability. Without CAP_NET_BIND_SERVICE in
# the container's bounding set (docker run --cap-drop ALL) the kernel refuses to run it at all,
# with a bare "Operation not permitted": say why instead.
if [ "${1:-}" = nginx ] && [ "$(id -u)" != 0 ]; then
    bounding=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status 2>/dev/null || true)
    if [ -n "$bounding" ] && [ $(( 0x$bounding >> 10 & 1 )) -eq 0 ]; then
        fail 77 "the container lacks CAP_NET_BIND_SERVICE, which nginx needs to listen on port 80 as user $(id -un) (run with --cap-add NET_BIND_SERVICE)"
    fi
fi

exec "$@"
