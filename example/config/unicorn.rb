# unicorn as in LARA's production image, minus nginx: it listens on the port the sidecar proxies to.
listen Integer(ENV.fetch("PORT", "3000")), tcp_nopush: true
worker_processes Integer(ENV.fetch("WEB_CONCURRENCY", "2"))
timeout 180
preload_app true
