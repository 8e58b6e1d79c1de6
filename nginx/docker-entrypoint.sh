#!/bin/sh
# Entrypoint of the LARA nginx sidecar.
#
# Writes APP_UPSTREAM (host:port of the app) into the file nginx.conf includes, then runs the
# command (nginx by default; `docker run IMAGE nginx -t` checks the config). The app does not
# have to be up: nginx resolves the name per request through the configured resolver.
set -eu

UPSTREAM_CONF=/etc/nginx/lara/upstream.conf

if [ -n "${APP_UPSTREAM:-}" ]; then
    # A host name or IPv4 address, or an [IPv6] address, then a port: nothing else can reach
    # the config file.
    if ! printf '%s\n' "$APP_UPSTREAM" | grep -Eqx \
        '([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}'; then
        echo "lara-nginx: APP_UPSTREAM='$APP_UPSTREAM' is not host:port (e.g. app:3000)" >&2
        exit 64
    fi
    wanted="map \"\" \$lara_upstream { default \"$APP_UPSTREAM\"; }"
    # Leave the file alone when it already says so (works with a read-only root filesystem).
    if ! grep -qxF "$wanted" "$UPSTREAM_CONF" 2>/dev/null; then
        printf '# Written by the entrypoint from APP_UPSTREAM.\n%s\n' "$wanted" > "$UPSTREAM_CONF"
    fi
fi

exec "$@"
