# frozen_string_literal: true

# Built by scripts/package-gems, which stages the files and sets the version and platform.
Gem::Specification.new do |s|
  s.name = "kamal-launcher"
  s.version = ENV.fetch("KAMAL_LAUNCHER_GEM_VERSION")
  platform = ENV.fetch("KAMAL_LAUNCHER_GEM_PLATFORM")
  s.platform = platform unless platform == "ruby"
  s.summary = "Runs the exact kamal locked in a Rails app's Gemfile.lock, installed in isolation"
  s.description = "A native launcher for Kamal: installs kamal and the locked versions of its dependency " \
                  "closure from Gemfile.lock into an isolated, checksum-verified cache, without loading the " \
                  "rest of the Gemfile. This gem only pins and ships the launcher; bin/kamal fetches it."
  s.authors = ["kamal-launcher contributors"]
  s.license = "MIT"
  s.homepage = "https://github.com/kamal-launcher/kamal-launcher"
  s.metadata = {
    "source_code_uri" => s.homepage,
    "rubygems_mfa_required" => "true"
  }
  s.files = Dir.glob("**/*", File::FNM_DOTMATCH).select { |f| File.file?(f) }
               .reject { |f| f.end_with?(".gemspec") || f.end_with?(".gem") }.sort
  s.bindir = "exe"
  s.executables = ["kamal-launcher"]
end
