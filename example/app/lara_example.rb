# A stand-in for LARA with its production shape: /lara home, config/version.yml written by the
# image build, precompiled fingerprinted assets under public/assets, unicorn on an HTTP port.
require "cgi"
require "json"
require "rack"
require "securerandom"
require "yaml"

module LaraExample
  # The version the image was built with: config/version.yml plus the ENV the Dockerfile sets.
  class Version
    def initialize(path)
      @path = path
    end

    def to_h
      data = File.exist?(@path) ? (YAML.safe_load(File.read(@path)) || {}) : {}
      data.merge("image_version_env" => ENV["LARA_IMAGE_VERSION"])
    end
  end

  # Pages that report what this container is.
  class Pages
    def initialize(root)
      @version = Version.new(File.join(root, "config", "version.yml"))
      manifest = Dir[File.join(root, "public", "assets", ".sprockets-manifest-*.json")].first
      @assets = manifest ? JSON.parse(File.read(manifest)).fetch("assets", {}) : {}
    end

    def call(env)
      case env["PATH_INFO"]
      when "/version.json"
        [200, { "Content-Type" => "application/json" }, [JSON.generate(@version.to_h)]]
      when "/health"
        [200, { "Content-Type" => "text/plain" }, ["ok\n"]]
      when "/"
        [200, { "Content-Type" => "text/html; charset=utf-8" }, [page]]
      else
        [404, { "Content-Type" => "text/plain" }, ["not found\n"]]
      end
    end

    private

    def page
      rows = @version.to_h.map do |key, value|
        "<tr><th>#{CGI.escapeHTML(key.to_s)}</th><td>#{CGI.escapeHTML(value.to_s)}</td></tr>"
      end
      css = @assets["application.css"]
      <<~HTML
        <!doctype html>
        <html><head><title>LARA example</title>
        #{css ? %(<link rel="stylesheet" href="/assets/#{css}">) : ""}
        </head><body>
        <h1>LARA example app</h1>
        <table id="version">#{rows.join}</table>
        <footer>Image version: #{CGI.escapeHTML(ENV.fetch("LARA_IMAGE_VERSION", "unknown"))}</footer>
        </body></html>
      HTML
    end
  end

  # Like a Rails app touching its session: every response sets a cookie (for cache tests).
  class SessionCookie
    def initialize(app)
      @app = app
    end

    def call(env)
      status, headers, body = @app.call(env)
      headers = headers.merge("Set-Cookie" => "_lara_session=#{SecureRandom.hex(16)}; path=/; HttpOnly")
      [status, headers, body]
    end
  end

  # public/ is served too, standing in for the newer app during a rolling deploy whose assets
  # an older sidecar does not have yet.
  def self.app(root:)
    app = Rack::Cascade.new([Rack::Files.new(File.join(root, "public")), Pages.new(root)], [404, 405])
    ENV["LARA_EXAMPLE_SET_COOKIE"] == "1" ? SessionCookie.new(app) : app
  end
end
