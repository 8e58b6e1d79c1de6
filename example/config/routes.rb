Rails.application.routes.draw do
  root "pages#index"
  # What the image is, as JSON (config/version.yml): read by smoke tests and people.
  get "version.json", to: "pages#version", format: false, defaults: { format: "json" }
  # Liveness only: answers without the database.
  get "health", to: "pages#health"
  resources :notes, only: :index
end
