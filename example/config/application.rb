require_relative "boot"

# The frameworks the app uses, not rails/all (see the Gemfile).
require "rails"
require "active_record/railtie"
require "action_controller/railtie"
require "action_view/railtie"
require "sprockets/railtie"

Bundler.require(*Rails.groups)

module Lara
  class Application < Rails::Application
    config.load_defaults 6.1
  end
end
