# What this image is: config/version.yml, written by the image build (the exact text of
# `invoke version --format yaml`), plus LARA_IMAGE_VERSION as the layout footer shows it.
module AppVersion
  FILE = Rails.root.join("config", "version.yml")

  def self.to_h
    data = FILE.exist? ? (YAML.safe_load(FILE.read) || {}) : {}
    data.merge("image_version_env" => ENV["LARA_IMAGE_VERSION"])
  end
end
