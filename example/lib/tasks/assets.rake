require "digest"
require "fileutils"
require "json"
require "zlib"

namespace :assets do
  desc "Fingerprint app/assets into public/assets (name-<sha256>.ext, with .gz siblings)"
  task :precompile do
    root = File.expand_path("../..", __dir__)
    out = File.join(root, "public", "assets")
    FileUtils.mkdir_p(out)
    assets = {}
    files = {}
    Dir[File.join(root, "app", "assets", "*", "*")].sort.each do |source|
      data = File.binread(source)
      digest = Digest::SHA256.hexdigest(data)
      logical = File.basename(source)
      ext = File.extname(logical)
      name = "#{File.basename(logical, ext)}-#{digest}#{ext}"
      File.binwrite(File.join(out, name), data)
      # mtime 0 keeps the .gz bytes reproducible across builds.
      Zlib::GzipWriter.open(File.join(out, "#{name}.gz"), Zlib::BEST_COMPRESSION) do |gz|
        gz.mtime = 0
        gz.write(data)
      end
      assets[logical] = name
      files[name] = { "logical_path" => logical, "digest" => digest, "size" => data.bytesize }
    end
    manifest = JSON.pretty_generate("files" => files, "assets" => assets)
    manifest_digest = Digest::SHA256.hexdigest(manifest)[0, 32]
    File.write(File.join(out, ".sprockets-manifest-#{manifest_digest}.json"), manifest)
    puts "precompiled #{assets.size} assets into #{out}"
  end
end
