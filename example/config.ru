# Rack entry point of the example LARA app, served by unicorn (config/unicorn.rb) as LARA is.
require_relative "config/environment"
require_relative "lib/lara_example/access_log"
require_relative "lib/lara_example/session_cookie"

# Each log line reaches `docker logs` at once, not when a buffer fills.
$stdout.sync = true

use LaraExample::AccessLog
use LaraExample::SessionCookie if ENV["LARA_EXAMPLE_SET_COOKIE"] == "1"
run Rails.application
