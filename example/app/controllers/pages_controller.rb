# Pages that say what this container is. None of them touches the database.
class PagesController < ApplicationController
  def index
    @version = AppVersion.to_h
  end

  def version
    render json: AppVersion.to_h
  end

  def health
    render plain: "ok\n"
  end
end
