# frozen_string_literal: true

# The launcher execs `ruby boot.rb ROOT EXE ARGS...`. This activates exactly the locked gems, in
# dependency order, from their installed specifications, and then runs the root gem's executable.

# Processes that kamal starts (hooks) must see the caller's environment as it was: the launcher only moved
# these aside so that e.g. RUBYOPT=-rbundler/setup could not load the app's Gemfile into this process.
%w[RUBYOPT RUBYLIB].each do |name|
  saved = ENV.delete("KAMAL_LAUNCHER_SAVED_#{name}")
  ENV[name] = saved.delete_prefix("=") if saved
end

base = __dir__
# A shared lock held for kamal's lifetime (the file is not inherited by its children): `cache prune`/`clean` try
# the lock exclusively and keep this environment while they cannot have it. flock(2) works alike on Linux and
# macOS. Failing to open or lock it (e.g. a cache restored without it) must not stop kamal.
KAMAL_LAUNCHER_IN_USE = begin
  file = File.open(File.join(base, "last-used"))
  file.flock(File::LOCK_SH | File::LOCK_NB)
  file
rescue SystemCallError
  nil
end
# Compiled bytecode, cached across runs (the technique bootsnap made standard): Ruby asks `load_iseq` for every
# file it loads; a cached iseq is used only when the file's path, size and mtime and this Ruby's revision and
# platform all match (not the inode, nor sub-second times in the store: a cache restored in CI gets new inodes,
# and tar keeps whole seconds), and its payload matches the CRC stored with it. Ruby's loader trusts its input and
# aborts with [BUG] on a damaged payload, so nothing unchecked reaches it; a damaged entry is compiled again and
# replaced. Any error falls back to Ruby's own loading.
module KamalLauncherBytecode
  DIR = File.expand_path("../../bytecode/#{RUBY_ENGINE}-#{RUBY_VERSION}-#{RUBY_REVISION}-#{RUBY_PLATFORM}", __dir__)
  # Starts every entry. Entries of the previous format begin with their source's path instead, so they never
  # match and are rewritten; a change to the format changes this.
  FORMAT = "kamal-launcher iseq 2\0".b
  STORE = "#{File.expand_path("../../store", __dir__)}/"

  # An entry is FORMAT, the stamp, the payload's CRC-32 (4 bytes, big-endian), the payload (`to_binary`).
  def self.fetch(path)
    stat = File.stat(path)
    # Files in the store never change (a change is damage, which `install` finds by their records), so whole
    # seconds do there: what CI caches are made with (tar's default format, zip) keeps no more. Elsewhere (a PATH
    # gem being edited) the exact time.
    mtime = path.start_with?(STORE) ? stat.mtime.to_i : "#{stat.mtime.to_i}.#{stat.mtime.nsec}"
    stamp = "#{FORMAT}#{path}\0#{stat.size}\0#{mtime}\0".b
    file = File.join(DIR, "#{Zlib.crc32(path).to_s(16)}-#{File.basename(path)}.iseq")
    data = begin
      File.binread(file)
    rescue SystemCallError
      nil
    end
    if data&.start_with?(stamp)
      crc = data.byteslice(stamp.bytesize, 4).unpack1("N")
      payload = data.byteslice(stamp.bytesize + 4..)
      return RubyVM::InstructionSequence.load_from_binary(payload) if payload && crc == Zlib.crc32(payload)
    end
    iseq = RubyVM::InstructionSequence.compile_file(path)
    payload = iseq.to_binary
    store(file, stamp + [Zlib.crc32(payload)].pack("N") + payload)
    iseq
  end

  # Written beside under an unpredictable name, created exclusively (nobody can plant the file or a link in its
  # place), then renamed, so concurrent runs never read half a file. Not flushed to disk: this runs on the warm
  # path, and what a crash can leave (an empty or cut-short entry) fails the CRC and is compiled again. A
  # read-only cache just does not keep it.
  def self.store(file, bytes)
    unless Dir.exist?(DIR)
      parent = File.dirname(DIR)
      Dir.mkdir(parent) unless Dir.exist?(parent)
      Dir.mkdir(DIR)
    end
    tmp = "#{file}.#{Random.urandom(8).unpack1("H*")}.tmp"
    File.open(tmp, File::WRONLY | File::CREAT | File::EXCL | File::BINARY, 0o644) do |out|
      begin
        out.write(bytes)
        out.close
        File.rename(tmp, file)
      rescue SystemCallError, IOError
        File.unlink(tmp) rescue nil # rubocop:disable Style/RescueModifier
      end
    end
  rescue SystemCallError
    nil
  end
end

if RubyVM::InstructionSequence.respond_to?(:load_from_binary) && !ENV.key?("KAMAL_LAUNCHER_NO_BYTECODE")
  begin
    require "zlib"
    class << RubyVM::InstructionSequence
      def load_iseq(path)
        KamalLauncherBytecode.fetch(path)
      rescue StandardError, SyntaxError
        nil
      end
    end
  rescue LoadError
    nil
  end
end

# The environment's manifest (written by the launcher's env module): "store directory<TAB>full name" per gem,
# dependencies first.
manifest = File.readlines(File.join(base, "manifest"), chomp: true).reject { |l| l.empty? || l.start_with?("#") }
  .map { |l| l.split("\t", 2) }
units = manifest.map { |dir, _| File.expand_path(dir, base) }
# Only the locked gems (and Ruby's default gems) are visible; the environment variables are left alone.
Gem.use_paths(base, units)

REPAIR_HINT = "  hint: `kamal-launcher install` (through bin/kamal: `KAMAL_LAUNCHER_CLI=1 bin/kamal install`) " \
              "checks every installed file and repairs what is damaged"

# A file of the store that Ruby cannot load (it no longer parses, or an extension is cut short) is damage in the
# cache, not kamal's bug: said as such, with the command that repairs it, instead of a backtrace into the cache.
# Anything else is kamal's own error and is raised as it is.
def kamal_launcher_damaged(error)
  store = KamalLauncherBytecode::STORE
  file = case error
         when SyntaxError then (error.respond_to?(:path) && error.path) || error.message[/\A(.+?):\d+:/, 1]
         when LoadError then error.message[/#{Regexp.escape(store)}\S+/o]
         end
  raise error unless file&.start_with?(store)
  detail = error.message.lines.first.to_s.strip.delete_prefix("#{file}:").sub(/\A(\d+):\s*/, 'line \\1: ')
  abort "kamal-launcher: #{file}, in kamal-launcher's cache, cannot be loaded (#{error.class}: #{detail})\n" \
        "#{REPAIR_HINT}"
end

specs = manifest.map do |dir, full|
  path = File.expand_path("#{dir}/specifications/#{full}.gemspec", base)
  Gem::Specification.load(path) or
    abort "kamal-launcher: #{path}, in kamal-launcher's cache, cannot be loaded\n#{REPAIR_HINT}"
end
# Dependencies come first, so every gem finds its locked dependencies already active and RubyGems never
# chooses a version itself (not even a newer default gem).
specs.each(&:activate)

root_name = ARGV.shift
exe = ARGV.shift.to_s
root = specs.find { |s| s.name == root_name }
exe = (root.executables.include?(root_name) || root.executables.size != 1 ? root_name : root.executables.first) if exe.empty?
unless root.executables.include?(exe)
  abort "kamal-launcher: #{root.full_name} has no executable `#{exe}` (it has: #{root.executables.join(", ")})\n" \
        "  hint: choose one with --exe NAME (through bin/kamal: KAMAL_LAUNCHER_EXE=NAME)"
end
$0 = root.bin_file(exe)
begin
  load $0
rescue SyntaxError, LoadError => e
  kamal_launcher_damaged(e)
end
