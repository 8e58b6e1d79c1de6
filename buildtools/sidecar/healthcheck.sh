#!/bin/bash
# Health check of the LARA nginx sidecar (the image's HEALTHCHECK): GET /nginx-health on the
# loopback, which nginx answers itself without asking the app. It uses bash's /dev/tcp, so the
# image needs no HTTP client (curl would add megabytes). Exit 0 only on a 200.
set -u

port="${LARA_NGINX_HEALTH_PORT:-80}"
if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
    echo "lara-nginx-healthcheck: nothing listens on 127.0.0.1:$port" >&2
    exit 1
fi
printf 'GET /nginx-health HTTP/1.0\r\nHost: localhost\r\nUser-Agent: lara-nginx-healthcheck\r\n\r\n' >&3
if ! IFS= read -r -t 4 status <&3; then
    echo "lara-nginx-healthcheck: no answer from 127.0.0.1:$port" >&2
    exit 1
fi
exec 3<&-
status="${status%$'\r'}"
case "$status" in
    "HTTP/1."?" 200 "*) exit 0 ;;
    *) echo "lara-nginx-healthcheck: /nginx-health answered '$status'" >&2; exit 1 ;;
esac
