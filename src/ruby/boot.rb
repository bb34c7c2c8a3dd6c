# The launcher execs `ruby boot.rb ROOT EXE ARGS...`. This activates exactly the locked gems, in
# dependency order, from their installed specifications, and then runs the root gem's executable.

# Processes that kamal starts (hooks) must see the caller's environment as it was: the launcher only moved
# these aside so that e.g. RUBYOPT=-rbundler/setup could not load the app's Gemfile into this process.
%w[RUBYOPT RUBYLIB].each do |name|
  saved = ENV.delete("KAMAL_LAUNCHER_SAVED_#{name}")
  ENV[name] = saved.delete_prefix("=") if saved
end

base = __dir__
# Held open for kamal's lifetime (not inherited by its children): `cache prune`/`clean` see it in /proc and keep
# this environment while it runs. Failing to open it (e.g. a cache restored without it) must not stop kamal.
KAMAL_LAUNCHER_IN_USE = begin
  File.open(File.join(base, "last-used"))
rescue SystemCallError
  nil
end
units = KAMAL_LAUNCHER_UNITS.map { |u| File.expand_path(u, base) }
# Only the locked gems (and Ruby's default gems) are visible; the environment variables are left alone.
Gem.use_paths(base, units)

specs = KAMAL_LAUNCHER_SPECS.map do |file|
  path = File.expand_path(file, base)
  Gem::Specification.load(path) or
    abort "kamal-launcher: cannot load #{path}; run `kamal-launcher install` to repair the environment"
end
# Dependencies come first, so every gem finds its locked dependencies already active and RubyGems never
# chooses a version itself (not even a newer default gem).
specs.each(&:activate)

root_name = ARGV.shift
exe = ARGV.shift.to_s
root = specs.find { |s| s.name == root_name }
exe = (root.executables.include?(root_name) || root.executables.size != 1 ? root_name : root.executables.first) if exe.empty?
unless root.executables.include?(exe)
  abort "kamal-launcher: #{root.full_name} has no executable `#{exe}` (it has: #{root.executables.join(", ")}); choose one with --exe"
end
$0 = root.bin_file(exe)
load $0
