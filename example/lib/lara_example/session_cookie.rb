require "rack/utils"
require "securerandom"

module LaraExample
  # With LARA_EXAMPLE_SET_COOKIE=1 every response, static files included, sets a fresh session
  # cookie: the worst case for a caching proxy in front of the app (the sidecar tests use it).
  class SessionCookie
    def initialize(app)
      @app = app
    end

    def call(env)
      status, headers, body = @app.call(env)
      Rack::Utils.set_cookie_header!(
        headers, "_lara_session", { value: SecureRandom.hex(16), path: "/", httponly: true }
      )
      [status, headers, body]
    end
  end
end
