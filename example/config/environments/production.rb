require "securerandom"

# Production as LARA runs it: precompiled assets, never compiled on demand, and public/ served
# by nginx (the sidecar), not by the app.
Rails.application.configure do
  config.cache_classes = true
  config.eager_load = true
  config.consider_all_requests_local = false
  config.action_controller.perform_caching = true

  # As in LARA: the app does not serve public/. RAILS_SERVE_STATIC_FILES=1 turns it on, for a
  # container without a sidecar, or one standing in for a newer app whose assets an older
  # sidecar lacks (the sidecar then fetches and caches them from the app).
  config.public_file_server.enabled = ENV["RAILS_SERVE_STATIC_FILES"].present?
  config.assets.compile = false

  # Logs go to stdout, for `docker logs`.
  config.log_level = :info
  config.log_tags = [:request_id]
  logger = ActiveSupport::Logger.new($stdout)
  logger.formatter = ::Logger::Formatter.new
  config.logger = ActiveSupport::TaggedLogging.new(logger)

  config.i18n.fallbacks = true
  config.active_support.deprecation = :notify
  # The image's db/schema.rb is part of the build; a migration run in a container must not
  # try to rewrite it (the app directory is not writable by the `lara` user).
  config.active_record.dump_schema_after_migration = false

  # Rails reads ENV["SECRET_KEY_BASE"] first and raises on every request without a secret.
  # The image must not carry one, yet it must answer without any environment (smoke tests,
  # `docker run` of a fresh build): so a process started without SECRET_KEY_BASE gets a random
  # one, and says so. Sessions then do not survive a restart nor move between containers.
  if ENV["SECRET_KEY_BASE"].to_s.empty?
    config.secret_key_base = SecureRandom.hex(64)
    warn "WARNING: SECRET_KEY_BASE is not set; using a random one for this process only. " \
         "Sessions and signed cookies will not survive a restart. Set SECRET_KEY_BASE in production."
  end
end
