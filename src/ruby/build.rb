# Builds a gem from a GIT or PATH source with `gem build` itself (RubyGems' command, run in this Ruby), from the
# gemspec's own directory as Bundler evaluates gemspecs there, and reports the built gem's full name so the
# launcher can check it against the lockfile. Arguments: GEMSPEC OUTPUT_GEM.
require "rubygems"
require "rubygems/gem_runner"
require "rubygems/package"

gemspec, output = ARGV
Dir.chdir(File.dirname(gemspec))
begin
  # A `gem build` without --output would write the .gem into the gem's directory (the app's own, for PATH).
  Gem::GemRunner.new.run(["build", File.basename(gemspec), "--output", output])
rescue Gem::SystemExitException => e
  exit e.exit_code
end
abort "gem build produced no #{output}" unless File.file?(output)
$stdout.puts "kamal-launcher-built #{Gem::Package.new(output).spec.full_name}"
