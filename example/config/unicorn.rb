# unicorn as in LARA's production image, minus nginx: it listens on the TCP port the sidecar
# proxies to (LARA's listens on a socket shared with nginx in the same container).
listen Integer(ENV.fetch("PORT", "3000")), tcp_nopush: true
worker_processes Integer(ENV.fetch("NUM_UNICORN_PROCESSES", "1"))
timeout 180
preload_app true
# unicorn's own log next to Rails' on stdout (its default is stderr).
logger Logger.new($stdout)

# The app is loaded once in the master; workers must not share its database socket.
before_fork do |_server, _worker|
  ActiveRecord::Base.connection_handler.clear_all_connections!
end
