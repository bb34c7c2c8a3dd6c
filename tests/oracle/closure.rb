# Oracle for closure selection, written against Bundler's own lockfile parser and RubyGems' platform matching
# (not against the launcher's code). Usage: ruby closure.rb LOCKFILE ROOT PLATFORM FORCE_RUBY
# Prints one line per gem of ROOT's closure, sorted by name: "name version platform sha256-or-null".
#
# Where this machine's Bundler (2.3) differs from current Bundler, current Bundler wins and the difference is
# handled here explicitly:
# - Bundler 2.3's parser does not know the CHECKSUMS section (added in 2.5), so checksums are read from the
#   lockfile text with the section's documented line format.
# - RubyGems 3.3 parses "x86_64-linux-gnu" as "x86_64-linux"; the platform printed is the lockfile's own text.
require "bundler"
require "bundler/lockfile_parser"

lockfile, root, platform_name, force_ruby = ARGV
platform_name = platform_name.dup
# Bundler's source objects want an app root; an empty Gemfile in a scratch directory is enough.
require "tmpdir"
scratch = Dir.mktmpdir("oracle")
File.write(File.join(scratch, "Gemfile"), "")
ENV["BUNDLE_GEMFILE"] = File.join(scratch, "Gemfile")
at_exit { FileUtils.rm_rf(scratch) }
text = File.read(lockfile)
# Bundler 2.3 needs a plugin installed to read a PLUGIN SOURCE block; the oracle only needs to know those specs
# exist, and none is in kamal's closure in the fixtures, so the block is dropped before parsing.
parser = Bundler::LockfileParser.new(text.gsub(/^PLUGIN SOURCE\r?\n(?:[ \t].*\r?\n|\r?\n)*/, ""))
local = Gem::Platform.new(platform_name)

# Original platform text per "name (version-platform)" line, to print what the lockfile says.
# RubyGems 3.3 folds "x86_64-linux-gnu" into "x86_64-linux", so Bundler 2.3 keeps one of two such variants;
# current Bundler keeps both and prefers the one equal to the local platform. Remember every raw spelling.
raw_platforms = Hash.new { |h, k| h[k] = [] }
text.each_line do |line|
  next unless line =~ /\A {4}([^ ]+) \(([^-)]+)(?:-([^)]+))?\)\r?\n?\z/
  raw_platforms[[$1, $2, Gem::Platform.new($3 || "ruby").to_s]] << ($3 || "ruby")
end
raw_platform = lambda do |name, version, folded|
  spellings = raw_platforms[[name, version, folded]]
  spellings.find { |p| p == platform_name } || spellings.first || folded
end

checksums = {}
in_checksums = false
text.each_line do |line|
  line = line.chomp
  if line =~ /\A[A-Z]/
    in_checksums = line == "CHECKSUMS"
    next
  end
  next unless in_checksums && line =~ /\A  ([^ ]+) \(([^)]+)\) sha256=([0-9A-Za-z+\/_=-]+)/
  digest = $3
  if digest.length == 64
    hex = digest.downcase
  else
    b64 = digest.tr("-_", "+/")
    b64 += "=" * ((4 - b64.length % 4) % 4)
    hex = b64.unpack1("m0").unpack1("H*")
  end
  checksums["#{$1}-#{$2}"] = hex
end

by_name = parser.specs.group_by(&:name)
chosen = {}
queue = [root]
until queue.empty?
  name = queue.shift
  next if chosen.key?(name)
  candidates = by_name[name]
  if candidates.nil?
    next if name == "bundler"
    abort "#{name} is not locked"
  end
  candidates = candidates.select { |s| s.platform == Gem::Platform::RUBY } if force_ruby == "true"
  best = if local == Gem::Platform::RUBY
    candidates.select { |s| s.platform == Gem::Platform::RUBY }
  else
    Bundler::GemHelpers.select_best_platform_match(candidates, local)
  end
  # Current RubyGems never lets a musl machine take a glibc-only variant, nor a glibc machine a musl one;
  # RubyGems 3.3 ignores libc. Apply the current rule on top of Bundler 2.3's choice.
  if local.os == "linux"
    musl = local.version.to_s.start_with?("musl")
    best = best.reject do |s|
      p = s.platform
      p != Gem::Platform::RUBY && p.is_a?(Gem::Platform) && p.os == "linux" &&
        raw_platform.call(s.name, s.version.to_s, p.to_s).include?("musl") != musl
    end
    best = candidates.select { |s| s.platform == Gem::Platform::RUBY } if best.empty?
  end
  spec = best.first or abort "no variant of #{name} for #{local}"
  chosen[name] = spec
  spec.dependencies.each { |d| queue << d.name }
end

chosen.keys.sort.each do |name|
  spec = chosen[name]
  plat = spec.platform == Gem::Platform::RUBY ? "ruby" : raw_platform.call(name, spec.version.to_s, spec.platform.to_s)
  full = plat == "ruby" ? "#{name}-#{spec.version}" : "#{name}-#{spec.version}-#{plat}"
  key = full.delete_prefix("#{name}-")
  source = spec.source
  remotes = if source.respond_to?(:remotes) then source.remotes.map(&:to_s).sort.join(",")
            elsif source.respond_to?(:uri) then source.uri.to_s
            else source.options["path"].to_s
            end
  line = [name, spec.version.to_s, plat, checksums.fetch("#{name}-#{key}", "null")]
  line << remotes if ENV["ORACLE_SOURCES"]
  puts line.join(" ")
end
