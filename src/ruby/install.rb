# Installs verified .gem files, each into its own GEM_HOME, with RubyGems' own installer so that the layout
# (specifications, extensions under this Ruby's API-version directory) is exactly what RubyGems expects.
# Jobs arrive on stdin while the launcher is still downloading, as NUL-terminated fields INDEX WEIGHT GEM_FILE
# DEST_DIR; the field "end" means no more. Stdin closing without it means the launcher died: everything stops. Reports "start N", then "ok N", "failed N", "build-failed N HINT" or
# "no-space N" (the disk is full) on stdout; each gem's own output goes to DEST_DIR.log. Gems install in forked
# children, several at a time, the heaviest waiting job (native extensions, largest first) first: the
# slowest build bounds the whole install only if it starts at once. Forking after RubyGems is loaded costs
# milliseconds, and keeps one gem's build from disturbing another's.
require "rubygems/installer"
require "rbconfig"

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

def install(gem, dest)
  Signal.trap("TERM", "DEFAULT")
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
    # A gem's tar entries carry modes that RubyGems would apply as they are (0777 included); the store is
    # shared, so files are never group- or world-writable.
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

running = {}
pending = []
eof = false
input = +""
$stdin.binmode
# One thread, woken by IO.select on stdin and on a pipe written at each SIGCHLD: waiting for children from
# several threads loses exit statuses on some Rubies.
chld_r, chld_w = IO.pipe
Signal.trap("CHLD") { chld_w.write_nonblock(".", exception: false) }
# TERM from the launcher (it cannot use what is installed, e.g. the store is not writable, or it was interrupted)
# stops everything: no new install starts, the running ones are ended, and each is waited for, so that nothing
# writes into the launcher's temporary area once this process has exited. The launcher starts this process as the
# leader of its own process group, which the installs and their builds (make, cc) share: TERM to the group reaches
# them all, also when the launcher is gone (SIGKILLed: stdin closes) and nobody else would stop them.
stopping = false
ended = false
stop = lambda do
  next if stopping

  stopping = true
  if Process.getpgrp == Process.pid
    Process.kill("TERM", 0)
  else
    running.each_key { |pid| Process.kill("TERM", pid) rescue nil } # rubocop:disable Style/RescueModifier
  end
end
Signal.trap("TERM") { stop.call }
# A launcher that is gone cannot read reports: writing one then fails, and everything stops. Once stopping, the
# launcher uses no report.
report = lambda do |line|
  next if stopping

  puts line
rescue Errno::EPIPE
  stop.call
end
loop do
  while running.size < max && !pending.empty? && !stopping
    # Heaviest first; among equals, the order the launcher sent them in.
    job = pending.min_by { |index, weight| [-weight, index] }
    pending.delete(job)
    index, _, gem, dest = job
    pid = fork do
      Signal.trap("CHLD", "DEFAULT")
      install(gem, dest)
    end
    running[pid] = index
    report.call("start #{index}")
  end
  until running.empty?
    pid, status = Process.wait2(-1, Process::WNOHANG)
    break unless pid

    index = running.delete(pid)
    if status.success?
      report.call("ok #{index}")
    elsif status.exitstatus == 4
      report.call("no-space #{index}")
    elsif status.exitstatus == 3
      report.call("build-failed #{index} #{hint}".rstrip)
    else
      report.call("failed #{index}")
    end
  end
  next if running.size < max && !pending.empty? && !stopping
  break if running.empty? && (stopping || (eof && pending.empty?))

  ready, = IO.select(eof ? [chld_r] : [$stdin, chld_r])
  chld_r.read_nonblock(4096, exception: false) if ready.include?(chld_r)
  next unless ready.include?($stdin)

  chunk = $stdin.read_nonblock(65_536, exception: false)
  if chunk.nil?
    eof = true
    # The launcher is gone without saying "end": nobody will use what is installed, into a temporary area the
    # next run sweeps.
    stop.call unless ended
  elsif chunk != :wait_readable
    input << chunk
    # Complete jobs only: a record may arrive in pieces.
    until ended
      if input.start_with?("end\0")
        ended = true
      elsif input.count("\0") >= 4
        fields = Array.new(4) do
          field, input = input.split("\0", 2)
          field
        end
        pending << [Integer(fields[0]), Integer(fields[1]), fields[2], fields[3]]
      else
        break
      end
    end
  end
end
