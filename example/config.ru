# Rack entry point of the example LARA app (served by unicorn, as LARA is).
require_relative "app/lara_example"

$stdout.sync = true
use Rack::CommonLogger, $stdout
run LaraExample.app(root: __dir__)
