# The page that needs the database: rows of the notes table.
class NotesController < ApplicationController
  # No database, or no schema yet: a short 503 that names the problem, not a 500 page.
  rescue_from ActiveRecord::ConnectionNotEstablished, ActiveRecord::StatementInvalid,
              with: :database_unavailable

  def index
    @notes = Note.order(:id).to_a
  end

  private

  def database_unavailable(error)
    logger.error("notes: #{error.class}: #{error.message}")
    render plain: "database unavailable (#{error.class})\n", status: :service_unavailable
  end
end
