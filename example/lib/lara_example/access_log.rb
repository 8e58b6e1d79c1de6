require "rack/body_proxy"

module LaraExample
  # One line per request on stdout, in Rack::CommonLogger's format, including files that
  # ActionDispatch::Static serves (Rails' own log does not show those). Unlike
  # Rack::CommonLogger it logs the request line as it arrived: Rails rewrites PATH_INFO to
  # "/404" when it renders an error page. The sidecar tests count requests with these lines.
  class AccessLog
    def initialize(app, io = $stdout)
      @app = app
      @io = io
    end

    def call(env)
      began = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      client = env["HTTP_X_FORWARDED_FOR"] || env["REMOTE_ADDR"] || "-"
      query = env["QUERY_STRING"].to_s.empty? ? "" : "?#{env["QUERY_STRING"]}"
      request = "#{env["REQUEST_METHOD"]} #{env["SCRIPT_NAME"]}#{env["PATH_INFO"]}#{query} #{env["SERVER_PROTOCOL"]}"
      status, headers, body = @app.call(env)
      body = Rack::BodyProxy.new(body) do
        seconds = Process.clock_gettime(Process::CLOCK_MONOTONIC) - began
        length = headers["Content-Length"] || "-"
        time = Time.now.strftime("%d/%b/%Y:%H:%M:%S %z")
        @io.write(%(#{client} - - [#{time}] "#{request}" #{status} #{length} #{format("%.4f", seconds)}\n))
      end
      [status, headers, body]
    end
  end
end
