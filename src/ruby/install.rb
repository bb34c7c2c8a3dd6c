# Installs verified .gem files, each into its own GEM_HOME, with RubyGems' own installer so that the layout
# (specifications, extensions under this Ruby's API-version directory) is exactly what RubyGems expects.
# Arguments: pairs of GEM_FILE DEST_DIR. Reports "ok N", "failed N", "build-failed N HINT" or "no-space N" (the
# disk is full) per pair on stdout; each gem's own output goes to DEST_DIR.log. Gems install in forked children,
# several at a time: forking after RubyGems is loaded costs milliseconds, and keeps one gem's build from
# disturbing another's.
require "rubygems/installer"
require "rbconfig"

jobs = ARGV.each_slice(2).to_a
max = Integer(ENV.fetch("KAMAL_LAUNCHER_JOBS", "2"))
$stdout.sync = true

def hint
  cc = RbConfig::CONFIG["CC"].to_s.split.first.to_s
  on_path = ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).any? { |d| File.executable?(File.join(d, cc)) }
  header = File.join(RbConfig::CONFIG["rubyhdrdir"].to_s, "ruby.h")
  missing = []
  missing << "a C compiler (#{cc.empty? ? "cc" : cc} is not on PATH; Debian/Ubuntu: apt-get install build-essential)" unless cc.start_with?("/") ? File.executable?(cc) : on_path
  missing << "Ruby's headers (#{header} is missing; Debian/Ubuntu: apt-get install ruby-dev)" unless File.exist?(header)
  missing.empty? ? "" : "likely missing: #{missing.join("; ")}"
end

running = {}
queue = jobs.each_with_index.to_a
# TERM from the launcher (it cannot use what is installed, e.g. the store is not writable) stops everything: no
# new install starts, the running ones are ended, and each is waited for, so that nothing writes into the
# launcher's temporary area once this process has exited.
stopping = false
Signal.trap("TERM") do
  stopping = true
  running.each_key { |pid| Process.kill("TERM", pid) rescue nil } # rubocop:disable Style/RescueModifier
end
loop do
  while running.size < max && !queue.empty? && !stopping
    (gem, dest), index = queue.shift
    pid = fork do
      Signal.trap("TERM", "DEFAULT")
      begin
        log = File.open("#{dest}.log", "w")
        $stdout.reopen(log)
        $stderr.reopen(log)
        installer = Gem::Installer.at(
          gem,
          install_dir: dest,
          bin_dir: File.join(dest, "bin"),
          ignore_dependencies: true,
          document: [],
          wrappers: true,
          env_shebang: true,
          build_args: [],
          # A gem's tar entries carry modes that RubyGems would apply as they are (0777 included); the store
          # is shared, so files are never group- or world-writable.
          dir_mode: 0o755,
          data_mode: 0o644,
          prog_mode: 0o755
        )
        installer.install
        # RubyGems keeps a copy of the .gem; the launcher's download cache already has it.
        require "fileutils"
        FileUtils.rm_rf(File.join(dest, "cache"))
        exit!(0)
      rescue Exception => e # rubocop:disable Lint/RescueException -- report everything, the parent decides
        # A full disk (or quota) is told by the exit status alone: there may be no room to write anything else.
        full = [e, e.cause].any? { |x| x.is_a?(Errno::ENOSPC) || x.is_a?(Errno::EDQUOT) } ||
               e.message.include?("No space left on device") || e.message.include?("Disk quota exceeded")
        begin
          $stderr.puts "#{e.class}: #{e.message}"
          $stderr.flush
          # The launcher shows this short form; the log keeps everything. A build's own last words (e.g.
          # "pg_config not found") say more than RubyGems' generic first line.
          lines = e.message.lines.map(&:rstrip).reject(&:empty?)
          if e.is_a?(Gem::Ext::BuildError)
            noise = ["current directory:", "Gem files will remain", "Results logged to", "To see why", "mkmf.log", "/"]
            lines = lines.map(&:strip).reject { |l| l.start_with?(*noise) }
          end
          File.write("#{dest}.err", lines.first(8).join("\n"))
        rescue SystemCallError, IOError
          # Nothing more to say than the exit status.
        end
        exit!(full ? 4 : e.is_a?(Gem::Ext::BuildError) ? 3 : 1)
      end
    end
    running[pid] = index
    puts "start #{index}"
  end
  break if running.empty?

  pid, status = Process.wait2
  index = running.delete(pid)
  if status.success?
    puts "ok #{index}"
  elsif status.exitstatus == 4
    puts "no-space #{index}"
  elsif status.exitstatus == 3
    puts "build-failed #{index} #{hint}".rstrip
  else
    puts "failed #{index}"
  end
end
