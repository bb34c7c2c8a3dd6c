# Builds a kamal-like closure for the benchmarks (not for the test suite): 23 gems, ~600 Ruby files in all,
# three with C extensions shaped like kamal 2.12's (bigdecimal: one large file, about 45% of `gem install`'s
# time for the whole closure; ed25519: ten small files; bcrypt_pbkdf: four small files), a root gem with an
# executable that loads everything and prints its version. Writes OUT/gems/*.gem, OUT/info/*, OUT/versions and
# OUT/Gemfile.lock (with CHECKSUMS; remote REMOTE), and OUT/reuse/Gemfile.lock: the same closure but for one
# pure-Ruby gem at another version (for the reuse benchmark).
#
# usage: ruby benches/kamal_like.rb OUT REMOTE
require "rubygems/package"
require "digest"
require "fileutils"

Gem::DefaultUserInteraction.ui = Gem::SilentUI.new

out, remote = ARGV.fetch(0), ARGV.fetch(1)
FileUtils.mkdir_p(%W[#{out}/gems #{out}/info #{out}/src])
GEMS = 22
FILES = 26
# Which gems carry a C extension: gem => [C files, functions per file]. Compile time grows with both: each file
# parses ruby.h, each function is optimised.
EXT = { 3 => [10, 10], 9 => [4, 8], 15 => [1, 400] }.freeze

def write(path, text)
  FileUtils.mkdir_p(File.dirname(path))
  File.write(path, text)
end

specs = []
GEMS.times do |g|
  name = format("kl_dep_%02d", g)
  dir = "#{out}/src/#{name}"
  files = []
  FILES.times do |f|
    body = (0...25).map { |m| "    def self.m#{m}(a, b = #{m})\n      [a, b, #{f}].map { |v| v.to_s * 2 }.join(\",\")\n    end\n" }.join
    write("#{dir}/lib/#{name}/part_#{f}.rb", "# frozen_string_literal: true\n\nmodule KlDep#{g}\n  module Part#{f}\n#{body}  end\nend\n")
    files << "lib/#{name}/part_#{f}.rb"
  end
  requires = (0...FILES).map { |f| "require \"#{name}/part_#{f}\"\n" }.join
  if EXT.key?(g)
    sources, per_file = EXT.fetch(g)
    init = +""
    sources.times do |c|
      fns = (0...per_file).map { |i| "static VALUE f#{i}(VALUE self, VALUE x) { long v = NUM2LONG(x); for (int k = 0; k < #{i % 7 + 1}; k++) v = v * 31 + #{i}; return LONG2NUM(v); }\n" }.join
      defs = (0...per_file).map { |i| "  rb_define_singleton_method(m, \"f#{c}_#{i}\", f#{i}, 1);\n" }.join
      write("#{dir}/ext/#{name}/part#{c}.c", "#include <ruby.h>\n#{fns}void kl_init_#{c}(VALUE m) {\n#{defs}}\n")
      files << "ext/#{name}/part#{c}.c"
      init << "  void kl_init_#{c}(VALUE);\n  kl_init_#{c}(m);\n"
    end
    write("#{dir}/ext/#{name}/#{name}.c", "#include <ruby.h>\nvoid Init_#{name}(void) {\n  VALUE m = rb_define_module(\"KlExt#{g}\");\n#{init}}\n")
    write("#{dir}/ext/#{name}/extconf.rb", "require \"mkmf\"\ncreate_makefile(\"#{name}/#{name}\")\n")
    files += ["ext/#{name}/#{name}.c", "ext/#{name}/extconf.rb"]
    requires += "require \"#{name}/#{name}\"\n"
  end
  write("#{dir}/lib/#{name}.rb", requires)
  files << "lib/#{name}.rb"
  spec = Gem::Specification.new do |s|
    s.name = name
    s.version = "1.#{g}.0"
    s.summary = "kamal-like benchmark dependency"
    s.authors = ["bench"]
    s.files = files
    s.extensions = ["ext/#{name}/extconf.rb"] if EXT.key?(g)
    s.add_runtime_dependency(format("kl_dep_%02d", g + 1), "~> 1.#{g + 1}") if g + 1 < GEMS && g % 3 != 2
  end
  specs << [dir, spec]
end

root_dir = "#{out}/src/kl_kamal"
write("#{root_dir}/lib/kl_kamal.rb", "module KlKamal; VERSION = \"2.7.0\"; end\n" + (0...GEMS).map { |g| format("require \"kl_dep_%02d\"\n", g) }.join)
write("#{root_dir}/exe/kl_kamal", "#!/usr/bin/env ruby\nrequire \"kl_kamal\"\nputs KlKamal::VERSION\n")
File.chmod(0o755, "#{root_dir}/exe/kl_kamal")
root = Gem::Specification.new do |s|
  s.name = "kl_kamal"
  s.version = "2.7.0"
  s.summary = "kamal-like benchmark root"
  s.authors = ["bench"]
  s.files = ["lib/kl_kamal.rb", "exe/kl_kamal"]
  s.bindir = "exe"
  s.executables = ["kl_kamal"]
  GEMS.times { |g| s.add_runtime_dependency(format("kl_dep_%02d", g), ">= 1.0") }
end
specs << [root_dir, root]

# The reuse variant: the last dependency (pure Ruby) one patch version up.
last_dir, last = specs[GEMS - 1]
bumped = last.dup
bumped.version = last.version.bump.to_s + ".1"
specs << [last_dir, bumped]

lock_specs = []
checksums = []
versions = []
specs.each do |dir, spec|
  file = Dir.chdir(dir) { Gem::Package.build(spec) }
  FileUtils.mv("#{dir}/#{file}", "#{out}/gems/#{file}")
  sha = Digest::SHA256.file("#{out}/gems/#{file}").hexdigest
  deps = spec.runtime_dependencies.map { |d| "#{d.name}:#{d.requirement.to_s.gsub(", ", "&")}" }.join(",")
  info = "---\n#{spec.version} #{deps}|checksum:#{sha}\n"
  File.write("#{out}/info/#{spec.name}", info)
  versions << "#{spec.name} #{spec.version} #{Digest::MD5.hexdigest(info)}"
  lock_specs << "    #{spec.name} (#{spec.version})\n" + spec.runtime_dependencies.map { |d| "      #{d.name} (#{d.requirement})\n" }.join
  checksums << "  #{spec.name} (#{spec.version}) sha256=#{sha}\n"
end
File.write("#{out}/versions", "created_at: 2026-01-01T00:00:00Z\n---\n" + versions.join("\n") + "\n")
# The compact index lists every version of a name; the bumped variant shares kl_dep_21's info file.
File.write("#{out}/info/#{last.name}", "---\n" + [last, bumped].map { |sp|
  file = "#{out}/gems/#{sp.full_name}.gem"
  "#{sp.version} |checksum:#{Digest::SHA256.file(file).hexdigest}\n"
}.join)
lockfile = lambda do |skip|
  keep = ->(line) { !line.include?("#{skip.name} (#{skip.version})") }
  "GEM\n  remote: #{remote}\n  specs:\n#{lock_specs.select(&keep).sort.join}\nPLATFORMS\n  ruby\n  x86_64-linux\n\n" \
    "DEPENDENCIES\n  kl_kamal\n\nCHECKSUMS\n#{checksums.select(&keep).sort.join}\nBUNDLED WITH\n   2.5.22\n"
end
File.write("#{out}/Gemfile.lock", lockfile.call(bumped))
FileUtils.mkdir_p("#{out}/reuse")
File.write("#{out}/reuse/Gemfile.lock", lockfile.call(last))
File.write("#{out}/reuse/Gemfile", "")
File.write("#{out}/Gemfile", "")
puts specs.size
