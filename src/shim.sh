#!/bin/sh
# Runs the kamal locked in @LOCKFILE@ through kamal-launcher: only kamal and its locked dependencies are
# installed (in an isolated cache) and loaded, never the rest of the Gemfile.
# Written by `kamal-launcher init`; the previous bin/kamal, if any, was kept as bin/kamal.bundler.
#
# The launcher used: KAMAL_LAUNCHER_BIN; else the cached copy of the kamal-launcher version @LOCKFILE@ pins;
# else kamal-launcher on PATH or in a usual install directory; else the pinned version is downloaded from the
# lockfile's gem source (or its Bundler mirror), verified against its SHA-256 and cached. Fetching needs only
# sh, curl or wget (else Ruby's Net::HTTP), sha256sum or shasum (else Ruby's Digest), tar and gzip: no Bundler.
# A cached launcher runs only while it is what was verified (its record, written once it was on disk, says how
# large it is), and only from a cache no other user can change, as ssh's StrictModes; else it is fetched again, or
# refused with the reason.
# `KAMAL_LAUNCHER_CLI=1 bin/kamal ARGS` runs the launcher's own commands (install, cache key, doctor, ...).
set -e

# Find the app from this script's real location, whatever the caller's directory or symlinks to it.
self=$0
while [ -L "$self" ]; do
  link=$(readlink "$self")
  case $link in
    /*) self=$link ;;
    *) case $self in */*) self=${self%/*}/$link ;; *) self=$link ;; esac ;;
  esac
done
case $self in */*) bindir=${self%/*} ;; *) bindir=. ;; esac
# CDPATH could send `cd` elsewhere (and make it print); -P resolves a symlinked bin/ to the real app.
app=$(CDPATH='' cd -P "$bindir/.." && pwd -P)
lock=$app/@LOCKFILE@

say() {
  echo "bin/kamal: $*" >&2
}

die() {
  say "$@"
  exit 1
}

# One pass over the lockfile (and the launcher's config files, for `cache_dir`) prints five lines: the
# version of kamal-launcher the lockfile pins, its GEM source, its locked platforms, PLATFORM=HEX for each of
# its CHECKSUMS entries (base64 converted), the configured cache_dir, and a final ".".
read_lockfile() {
  awk '
    function hex(s,   abc, i, v, bits, n, out, byte) {
      if (s ~ /^[0-9a-fA-F]+$/ && length(s) == 64) return tolower(s)
      abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
      gsub(/-/, "+", s); gsub(/_/, "/", s); gsub(/=+$/, "", s)
      bits = 0; n = 0; out = ""
      for (i = 1; i <= length(s); i++) {
        v = index(abc, substr(s, i, 1)) - 1
        if (v < 0) return ""
        bits = bits * 64 + v; n += 6
        if (n >= 8) { n -= 8; byte = int(bits / 2 ^ n); bits -= byte * 2 ^ n; out = out sprintf("%02x", byte) }
      }
      return length(out) == 64 ? out : ""
    }
    # "(1.2.0-x86_64-linux-gnu)" -> ver and plat; ver is empty when the text is no version.
    function split_spec(s) {
      sub(/^\(/, "", s); sub(/\)$/, "", s)
      ver = s; plat = "ruby"
      if (index(s, "-")) { plat = substr(s, index(s, "-") + 1); ver = substr(s, 1, index(s, "-") - 1) }
      if (ver !~ /^[0-9][0-9A-Za-z.]*$/ || plat !~ /^[0-9A-Za-z_.-]+$/) ver = ""
    }
    FNR == 1 { file++ }
    { sub(/\r$/, "") }
    file == 1 && /^[^ ]/ { section = $0; gem_remote = "" }
    file == 1 && section == "GEM" && /^  remote: / && gem_remote == "" { gem_remote = substr($0, 11) }
    file == 1 && section == "GEM" && /^    kamal-launcher \([^)]*\)$/ {
      split_spec($2)
      if (ver == "") next
      if (pin == "") { pin = ver; remote = gem_remote }
      if (ver == pin) variants = variants " " plat
    }
    file == 1 && section == "CHECKSUMS" && /^  kamal-launcher \([^)]*\) / {
      split_spec($2)
      n = split($3, algos, ",")
      for (i = 1; i <= n; i++) if (ver != "" && algos[i] ~ /^sha256=/) sums[ver, plat] = hex(substr(algos[i], 8))
    }
    file > 1 && cache_cfg == "" && /^[ \t]*cache_dir[ \t]*=[ \t]*["\047][^"\047]*["\047][ \t]*(#.*)?$/ {
      c = $0; sub(/^[^=]*=[ \t]*["\047]/, "", c); sub(/["\047][ \t]*(#.*)?$/, "", c)
      if (c !~ /^\//) { d = FILENAME; sub(/[^\/]*$/, "", d); c = d c }
      cache_cfg = c
    }
    END {
      for (k in sums) { split(k, kp, SUBSEP); if (kp[1] == pin && sums[k] != "") s = s " " kp[2] "=" sums[k] }
      # The last line keeps $(...) from stripping the empty lines before it.
      print pin; print remote; print variants; print s; print cache_cfg; print "."
    }
  ' "$@"
}

# HOME only when it is absolute, as the launcher reads it (cache.rs): a relative one would put the cache (and the
# places a launcher is looked for) under whichever directory bin/kamal was started from, the repository often.
case ${HOME:-} in /*) home=$HOME ;; *) home="" ;; esac

# The launcher's cache directory, by the launcher's own rules: KAMAL_LAUNCHER_CACHE_DIR, cache_dir in the
# app's .kamal-launcher.toml or the user's config.toml (read with the lockfile), else XDG_CACHE_HOME, else ~/.cache.
app_toml=$app/.kamal-launcher.toml
[ -f "$app_toml" ] || app_toml=/dev/null
case ${XDG_CONFIG_HOME:-} in
  /*) user_toml=$XDG_CONFIG_HOME/kamal-launcher/config.toml ;;
  *) user_toml=${home:-/nonexistent}/.config/kamal-launcher/config.toml ;;
esac
user_toml=${KAMAL_LAUNCHER_CONFIG:-$user_toml}
[ -f "$user_toml" ] || user_toml=/dev/null
cache_dir() {
  cache=${KAMAL_LAUNCHER_CACHE_DIR:-$1}
  case $cache in
    /*) ;;
    ?*) cache=$PWD/$cache ;;
    *) case ${XDG_CACHE_HOME:-} in
         /*) cache=$XDG_CACHE_HOME/kamal-launcher ;;
         *) cache=${home:+$home/.cache/kamal-launcher} ;;
       esac ;;
  esac
}

# Who this is, from `id` (POSIX prints `uid=N(name) gid=N(name)`, with euid= and egid= when they differ): asked
# only when an owner is not plainly this user or root, or a directory is group-writable.
who_am_i() {
  [ -z "${me_uid:-}" ] || return 0
  ids=" $(LC_ALL=C id 2>/dev/null || true)"
  id_part uid
  me_uid=${part%%"("*}
  me_user=$name
  id_part gid
  me_gid=${part%%"("*}
  me_group=$name
}

id_part() {
  case $ids in
    *" e$1="*) part=${ids#*" e$1="} ;;
    *" $1="*) part=${ids#*" $1="} ;;
    *) part="" ;;
  esac
  part=${part%%" "*}
  name=""
  case $part in *"("*")") name=${part#*"("}; name=${name%")"} ;; esac
}

# judge MODE UID GID PATH: whether only this user (or root) can change PATH; else $distrust says who else can
# (owner, world or group). The rules of src/trust.rs, which checks the same cache from Rust: owned by this user or
# root, and writable by no one else, except a world-writable directory with the sticky bit (/tmp-style: others
# cannot rename or remove our entries) and a group-writable one whose group is this user's private group (umask
# 002 systems).
judge() {
  # -O is not POSIX (dash, bash, BusyBox and macOS sh have it): where it fails, `id` decides.
  if [ "$2" != 0 ] && ! [ -O "$4" ] 2>/dev/null; then
    who_am_i
    if [ "$2" != "$me_uid" ]; then
      distrust=owner
      return 1
    fi
  fi
  case $1 in
    d???????w[tT]*) ;;
    ????????w*)
      distrust=world
      return 1
      ;;
    ?????w*)
      who_am_i
      if [ "$3" != "$me_gid" ] || [ -z "$me_user" ] || [ "$me_user" != "$me_group" ]; then
        distrust=group
        return 1
      fi
      ;;
  esac
  return 0
}

# inspect DIR [FILE...]: exits with the reason unless DIR, every directory above it (symlinks resolved) and each
# FILE in it pass judge; sets inspected_size and inspected_mode to the first FILE's; fails when they cannot all be
# read (a FILE a concurrent run just removed). One `ls` does it, run from DIR so that no path it prints can hold a
# newline: this is a warm start's only fork besides finding the app.
inspect() {
  inspected=$1
  shift
  listing=$(
    cd -P "$inspected" || exit
    set -- "$@" .
    up=..
    at=$PWD
    while [ -n "$at" ]; do
      set -- "$@" "$up"
      at=${at%/*}
      up=$up/..
    done
    LC_ALL=C exec ls -lndL "$@"
  ) || return 1
  inspected_size=""
  inspected_mode=""
  bad=""
  while IFS=' ' read -r mode links uid gid size rest; do
    [ -n "$mode" ] || continue
    entry=${rest##* }
    [ "$entry" != "${1:-}" ] || { inspected_size=$size; inspected_mode=$mode; }
    judge "$mode" "$uid" "$gid" "$inspected/$entry" && continue
    # The one to name is the directory nearest the root: fixing it is what makes the rest trustworthy.
    if [ -n "$bad" ]; then
      case $entry in .|..|../*) ;; *) continue ;; esac
      case $bad in .|..|../*) [ "${#entry}" -gt "${#bad}" ] || continue ;; esac
    fi
    bad=$entry
    bad_mode=$mode
    bad_uid=$uid
    bad_gid=$gid
    bad_why=$distrust
  done <<EOF
$listing
EOF
  : "$links"
  if [ -n "$bad" ]; then
    distrust=$bad_why
    refuse "$bad" "$bad_mode" "$bad_uid" "$bad_gid"
  fi
  return 0
}

# refuse ENTRY MODE UID GID: the message for an ENTRY of inspect (., .., ../.., or a file) that fails judge.
refuse() {
  case $1 in
    .|..|../*)
      path=$(cd -P "$inspected" && pwd -P) || path=$inspected
      rel=$1
      while [ "$rel" != . ] && [ -n "$rel" ]; do
        path=${path%/*}
        rel=${rel#..}
        rel=${rel#/}
      done
      path=${path:-/}
      ;;
    *) path=$inspected/$1 ;;
  esac
  line=$(cd -P "$inspected" && LC_ALL=C exec ls -ldL "$1" 2>/dev/null) || line=""
  read -r _ _ owner group _ <<EOF
$line
EOF
  who_am_i
  case $distrust in
    owner) what="is owned by ${owner:-uid $3} (uid $3), neither you (${me_user:-uid $me_uid}, uid $me_uid) nor root" ;;
    world) what="is writable by every user (and has no sticky bit)" ;;
    *) what="is writable by the group ${group:-gid $4} (gid $4), which is not your own group" ;;
  esac
  cache_real=$(cd -P "$cache" 2>/dev/null && pwd -P) || cache_real=$cache
  case $path in
    "$cache_real" | "$cache_real"/*)
      if [ "$distrust" = owner ]; then
        fix="or, if what it holds is yours, take it over: sudo chown -R ${me_user:-$me_uid} $path"
      else
        fix="or make it writable by you alone: chmod go-w $path"
      fi
      ;;
    *) fix="outside $path (or make $path writable by its owner alone)" ;;
  esac
  die "refusing to use the cache: $path (owner ${owner:-$3}, mode $2) $what: another user could change what runs as you
  hint: set KAMAL_LAUNCHER_CACHE_DIR to a directory of your own, $fix"
}

# check_launcher BIN: whether BIN is a launcher that was verified and still is what was verified: its record
# (BIN.ok, "SIZE SHA256", written by this script or pinned.rs once BIN was on disk) is there, is not older than BIN,
# and gives BIN's size. An empty or half-written binary never runs: it is fetched again. A launcher another user
# could have planted is refused (inspect). When BIN is there but fails, $damage says why.
check_launcher() {
  damage=""
  rec_size=""
  rec_sha=""
  [ -f "$1" ] || return 1
  # Unreadable (a concurrent run replacing it): taken as missing, so the caller waits for that run's lock.
  if [ -f "$1.ok" ]; then
    inspect "${1%/*}" "${1##*/}" "${1##*/}.ok" || return 1
    { read -r rec_size rec_sha <"$1.ok"; } 2>/dev/null || true
    # shellcheck disable=SC3013
    if [ "$inspected_size" != "$rec_size" ]; then
      damage="it is $inspected_size bytes, but $rec_size were verified"
    elif [ "$1" -nt "$1.ok" ]; then
      damage="it changed after it was verified"
    else
      case $inspected_mode in
        ???[xs]* | ??????[xs]* | ?????????[xt]*) ;;
        *)
          damage="it is not executable (mode $inspected_mode)"
          rec_sha=""
          return 1
          ;;
      esac
      # Its x bits set, yet not executable: a noexec mount. `[ -x ]` is a builtin, so the warm path forks no more.
      [ -x "$1" ] || noexec "$1"
      return 0
    fi
  else
    inspect "${1%/*}" "${1##*/}" || return 1
    damage="nothing records that it was verified (a run interrupted, or a crash before it reached the disk)"
  fi
  return 1
}

# noexec BIN: stops with why BIN cannot run though its mode allows it (exec would fail with 126 on every run).
noexec() {
  die "cannot run $1: the cache is on a filesystem mounted noexec, where no program may run
  hint: set KAMAL_LAUNCHER_CACHE_DIR to a directory on a filesystem that allows executables"
}

# The warm path: a memo in the cache, newer than the lockfile, names the pinned version, and its launcher checks
# out (one `ls`). The memo only saves reading the lockfile: any launcher checks the pin itself and hands over when
# it is not the pinned one.
launcher=${KAMAL_LAUNCHER_BIN:-}
pin=""
if [ -z "$launcher" ] && [ "$app_toml$user_toml" = /dev/null/dev/null ]; then
  cache_dir ""
  memo=$cache/@LAYOUT@/launchers/pins$lock
  # -nt (POSIX.1-2024; dash, busybox, bash and macOS sh have it): where a shell lacks it, the test fails and
  # the lockfile is read, which is always right.
  # shellcheck disable=SC3013
  if [ -n "$cache" ] && [ -f "$memo" ] && [ "$memo" -nt "$lock" ] && read -r pin <"$memo"; then
    case $pin in
      *[!0-9A-Za-z.]*|'') pin="" ;;
      *)
        if check_launcher "$cache/@LAYOUT@/launchers/$pin/kamal-launcher"; then
          launcher=$cache/@LAYOUT@/launchers/$pin/kamal-launcher
        fi
        ;;
    esac
  fi
fi
cache_cfg=""
if [ -z "$launcher" ] && [ -f "$lock" ]; then
  { read -r pin; read -r remote; read -r variants; read -r sums; read -r cache_cfg; } <<EOF
$(read_lockfile "$lock" "$app_toml" "$user_toml")
EOF
fi
cache_dir "$cache_cfg"
pinned=$cache/@LAYOUT@/launchers/$pin/kamal-launcher
memo=$cache/@LAYOUT@/launchers/pins$lock

# remember_pin: writes the memo (best effort: a read-only cache just keeps the slower path), through a directory
# of its own: a predictable temporary name is one another process could have put a symlink at.
remember_pin() {
  memo_tmp=${memo%/*}/.tmp.$$
  { mkdir -p "${memo%/*}" && mkdir -m 700 "$memo_tmp" && printf '%s\n' "$pin" >"$memo_tmp/pin" &&
    mv -f "$memo_tmp/pin" "$memo"; } 2>/dev/null || true
  rm -rf "$memo_tmp" 2>/dev/null || true
}

if [ -z "$launcher" ] && [ -n "$pin" ] && [ -n "$cache" ] && check_launcher "$pinned"; then
  launcher=$pinned
  remember_pin
fi
if [ -z "$launcher" ]; then
  launcher=$(command -v kamal-launcher 2>/dev/null || true)
fi
if [ -z "$launcher" ]; then
  # install.sh's prefix, /usr/local, Homebrew, cargo install, and RubyGems' bin directories (gem install
  # --user-install, GEM_HOME, Homebrew's Ruby): a pattern that matches nothing stays as written and fails -x.
  for candidate in "${home:-/nonexistent}/.local/bin/kamal-launcher" /usr/local/bin/kamal-launcher \
    /opt/homebrew/bin/kamal-launcher "${CARGO_HOME:-${home:-/nonexistent}/.cargo}/bin/kamal-launcher" \
    "${GEM_HOME:-/nonexistent}/bin/kamal-launcher" "${home:-/nonexistent}"/.gem/ruby/*/bin/kamal-launcher \
    "${home:-/nonexistent}"/.local/share/gem/ruby/*/bin/kamal-launcher \
    /opt/homebrew/lib/ruby/gems/*/bin/kamal-launcher /usr/local/lib/ruby/gems/*/bin/kamal-launcher; do
    if [ -x "$candidate" ]; then
      launcher=$candidate
      break
    fi
  done
fi

@PLATFORM_FUNCTIONS@
# redact URL: the URL without user:password@, for messages.
redact() {
  # printf, not echo: a value such as "-n" or one holding a backslash is printed as it is.
  printf '%s\n' "$1" | sed 's#^\([a-zA-Z][a-zA-Z0-9+.-]*://\)[^/@]*@#\1#'
}

# flush PATH: puts a file's bytes (or a directory's entries) on the disk before what depends on them. Filesystems
# such as ext4 may commit a rename before the data it names, so a power loss after a successful run would leave an
# empty launcher under its final name. GNU's and BusyBox's `sync FILE` fsync it; where `sync` takes no file
# (macOS), it flushes everything.
flush() {
  sync "$1" 2>/dev/null || sync
}

# ruby_fetch: the Ruby program `fetch` runs where there is neither curl nor wget, with ARGV = URL OUT HEADERS TRIES
# TIMEOUT ATTEMPTS and the credential (user:password, as Bundler stores it) on stdin. What curl does: proxies as
# Net::HTTP and the launcher find them (https_proxy, HTTPS_PROXY, else http_proxy, HTTP_PROXY; no_proxy, NO_PROXY;
# loopback too), roots from OpenSSL's defaults (SSL_CERT_FILE, SSL_CERT_DIR), redirects followed but never from
# https down to http and with the credential only to the URL's own scheme, host and port, `timeout` on connecting
# and on each silence mid-body (exit 28, as curl's), failures tried again as curl --retry does (not a 4xx but 408
# and 429); every response's status line and headers in HEADERS, the number of tries in TRIES, the reason on
# stderr as "ruby: ...". Runs on Ruby 3.1 to 4.0 without RubyGems.
# shellcheck disable=SC2016
ruby_fetch='
require "net/http"
require "openssl"
class Refused < StandardError; end
url, out, head_file, tries_file, timeout, attempts = ARGV
timeout = timeout.to_i
attempts = attempts.to_i
cred = $stdin.read.to_s
cred = nil if cred.empty?
origin = URI(url)
head = File.open(head_file, "w")
def proxy_for(uri)
  env = lambda { |*names| names.map { |n| ENV[n] }.find { |v| v && !v.empty? } }
  http = env.call("http_proxy", "HTTP_PROXY")
  px = uri.scheme == "https" ? (env.call("https_proxy", "HTTPS_PROXY") || http) : http
  return nil unless px
  no = env.call("no_proxy", "NO_PROXY")
  return nil if no && !URI::Generic.use_proxy?(uri.hostname, uri.hostname, uri.port, no)
  px = "http://" + px unless px.include?("://")
  URI(px)
end
# The OpenSSL defaults (SSL_CERT_FILE, SSL_CERT_DIR among them), and every certificate in SSL_CERT_DIR, hashed
# names or not, as the launcher reads it.
$store = OpenSSL::X509::Store.new
$store.set_default_paths
[ENV["SSL_CERT_FILE"], *(ENV["SSL_CERT_DIR"].to_s.split(":").flat_map { |d| Dir.glob(File.join(d, "*")) })].each do |f|
  begin
    $store.add_file(f) if f && File.file?(f)
  rescue OpenSSL::X509::StoreError
  end
end
def unescape(s)
  s && s.gsub(/%([0-9A-Fa-f]{2})/) { $1.hex.chr }
end
def get(uri, cred, timeout, out, head)
  proxy = proxy_for(uri)
  args = [uri.hostname, uri.port]
  args += [proxy.hostname, proxy.port, unescape(proxy.user), unescape(proxy.password)] if proxy
  args += [nil] unless proxy
  http = Net::HTTP.new(*args)
  http.use_ssl = uri.scheme == "https"
  http.cert_store = $store if http.use_ssl?
  http.open_timeout = timeout
  http.read_timeout = timeout
  http.ssl_timeout = timeout
  http.max_retries = 0 if http.respond_to?(:max_retries=)
  req = Net::HTTP::Get.new(uri)
  req["Accept-Encoding"] = "identity"
  if cred
    # As curl -u and GNU Wget send it: as Bundler stores it, undecoded.
    user, pass = cred.split(":", 2)
    req.basic_auth(user, pass.to_s)
  end
  http.start do
    http.request(req) do |res|
      head.write("HTTP/#{res.http_version} #{res.code} #{res.message}\r\n")
      res.each_header { |k, v| head.write("#{k}: #{v}\r\n") }
      head.write("\r\n")
      head.flush
      return res unless res.is_a?(Net::HTTPSuccess)
      File.open(out, "wb") { |f| res.read_body { |chunk| f.write(chunk) } }
      return res
    end
  end
end
tries = 0
status = 1
reason = nil
while tries < attempts
  tries += 1
  sleep(1) if tries > 1
  uri = origin
  redirects = 0
  begin
    loop do
      res = get(uri, (uri.scheme == origin.scheme && uri.hostname == origin.hostname && uri.port == origin.port) ? cred : nil, timeout, out, head)
      if res.is_a?(Net::HTTPRedirection) && res["location"]
        redirects += 1
        raise Refused, "too many redirects" if redirects > 10
        nxt = uri + res["location"]
        raise Refused, "redirected from https to plain http, which is refused" if uri.scheme == "https" && nxt.scheme != "https"
        raise Refused, "redirected to #{nxt.scheme}, which is refused" unless %w[http https].include?(nxt.scheme)
        uri = nxt
        next
      end
      if res.is_a?(Net::HTTPSuccess)
        status = 0
      else
        reason = "The requested URL returned error: #{res.code}"
        status = 22
      end
      break
    end
    break if status == 0
    code = reason[/\d+\z/].to_i
    break unless code == 408 || code == 429 || code >= 500
  rescue Net::OpenTimeout, Net::ReadTimeout, Timeout::Error => e
    reason = "timed out (#{e.class})"
    status = 28
  rescue Errno::ENOSPC, Errno::EDQUOT => e
    reason = "Failure writing output: #{e.message}"
    status = 23
    break
  rescue Refused => e
    reason = e.message
    status = 1
    break
  rescue Errno::ECONNREFUSED, Errno::ECONNRESET, Errno::EPIPE, EOFError => e
    # Transient: tried again, as curl --retry --retry-connrefused does.
    reason = "#{e.message} (#{e.class})"
    status = 7
  rescue StandardError => e
    # A name that does not resolve, a certificate not trusted: trying again would not help.
    reason = "#{e.message} (#{e.class})"
    status = 7
    break
  end
end
File.write(tries_file, "#{tries}\n")
warn("ruby: #{reason}") if status != 0
exit(status)
'

# fetch URL CREDENTIALS OUT: downloads URL into OUT as the launcher would: Bundler's `timeout` (BUNDLE_TIMEOUT)
# bounds connecting and any silence mid-body, and a failure is tried `retry` (BUNDLE_RETRY) more times. The URL's
# scheme is kept (https is never downgraded, even by a redirect), and credentials go to URL's own host alone,
# never on a command line curl sees, never in a message; a tool's own error text is shown redacted. On failure,
# $fetch_reason says why in the tool's words, $fetch_status is what the server answered (`404 Not Found`), or else
# $fetch_why why nothing did (`connection refused`), $fetch_tries after how many tries, and $fetch_needed is the
# size the server announced, if it did.
fetch() {
  f_url=$1
  # The callers check where each URL came from; whatever calls this, a URL is never a tool's option.
  case $f_url in
    http://?* | https://?*) ;;
    *) die "refusing to download $(redact "$f_url"): it is not an http(s) URL" ;;
  esac
  f_cred=$2
  f_out=$3
  fetch_err=$work/err
  fetch_reason=""
  fetch_needed=""
  stalled=""
  attempts=$((retries + 1))
  case $f_url in https://*) f_proto='=https' ;; *) f_proto='=http,https' ;; esac
  f_tool=""
  if command -v curl >/dev/null 2>&1; then
    f_tool=curl
    # A refused connection is tried again too, as the launcher does, where curl can (7.52 and later).
    if [ -z "${curl_connrefused+set}" ]; then
      curl_connrefused=""
      ! curl --retry-connrefused --version >/dev/null 2>&1 || curl_connrefused=--retry-connrefused
    fi
    # A stall is less than a byte a second over `timeout` seconds; curl averages over a few seconds more.
    set -- -fsSL --connect-timeout "$timeout" --speed-limit 1 --speed-time "$timeout" --retry "$retries" \
      ${curl_connrefused:+"$curl_connrefused"} --proto "$f_proto" --proto-redir "$f_proto" -D "$work/headers" \
      -o "$f_out" "$f_url"
    if [ -n "$f_cred" ]; then
      printf 'user = "%s"\n' "$(printf '%s' "$f_cred" | sed 's/[\\"]/\\&/g')" |
        curl -K - "$@" 2>"$fetch_err" && return 0
    else
      curl "$@" 2>"$fetch_err" </dev/null && return 0
    fi
    f_rc=$?
    [ "$f_rc" != 28 ] || stalled=1
    f_headers=$work/headers
  elif command -v wget >/dev/null 2>&1; then
    if wget --version >/dev/null 2>&1; then
      f_tool=gnu-wget
      # GNU Wget (BusyBox's has no --version) sends a URL's own credentials to that URL alone, not through a
      # redirect: they go in the URL, percent-encoded.
      f_get=$f_url
      if [ -n "$f_cred" ]; then
        f_get=${f_url%%://*}://$(printf '%s' "$f_cred" |
          sed -e 's/%/%25/g' -e 's/@/%40/g' -e 's#/#%2F#g' -e 's/?/%3F/g' -e 's/#/%23/g' -e 's/ /%20/g')@${f_url#*://}
      fi
      f_rc=0
      # Verbose: -nv leaves a read timeout unsaid.
      LC_ALL=C wget -S --progress=dot:giga -T "$timeout" -t "$attempts" --waitretry=1 --retry-connrefused \
        -O "$f_out" "$f_get" 2>"$fetch_err" || f_rc=$?
      [ "$f_rc" != 4 ] || ! grep -q 'timed out' "$fetch_err" || stalled=1
    else
      # BusyBox's wget follows every redirect, credentials and all, to whichever host it names.
      [ -z "$f_cred" ] || die "$(redact "$f_url") needs credentials, and BusyBox's wget would send them on to any host a redirect names: install curl (apk add curl), or install kamal-launcher and set KAMAL_LAUNCHER_BIN"
      f_try=1
      f_wait=1
      while :; do
        f_rc=0
        watched_wget "$f_url" "$f_out" || f_rc=$?
        # 4xx other than 408 and 429 would come again: the launcher does not try again either.
        if [ "$f_rc" = 0 ] || [ "$f_try" -ge "$attempts" ] ||
          { grep -q 'error: HTTP/1\.. 4' "$fetch_err" && ! grep -qE 'error: HTTP/1\.. 4(08|29)' "$fetch_err"; }; then
          break
        fi
        sleep "$f_wait"
        f_try=$((f_try + 1))
        f_wait=$((f_wait * 2))
      done
    fi
    f_headers=$fetch_err
    # wget cannot be told to refuse a redirect to plain http; its headers (-S) say whether one came.
    case $f_url in
      https://*)
        if [ "$f_rc" = 0 ] && grep -qi '^ *location: *http:' "$fetch_err"; then
          f_rc=1
          echo "redirected from https to plain http, which is refused" >>"$fetch_err"
        fi
        ;;
    esac
    [ "$f_rc" != 0 ] || return 0
  elif command -v ruby >/dev/null 2>&1; then
    # Ruby's own Net::HTTP (kamal needs Ruby anyway: slim images have it, and no curl or wget). The credential goes
    # on its stdin, never on a command line; RUBYOPT is emptied so that an app's -rbundler/setup stays out of it.
    f_tool=ruby
    f_rc=0
    printf '%s' "$f_cred" | RUBYOPT='' ruby --disable-gems -e "$ruby_fetch" "$f_url" "$f_out" "$work/headers" \
      "$work/tries" "$timeout" "$attempts" 2>"$fetch_err" || f_rc=$?
    [ "$f_rc" != 28 ] || stalled=1
    f_headers=$work/headers
    [ "$f_rc" != 0 ] || return 0
  else
    die "downloading kamal-launcher needs curl, wget or ruby; install one, or install kamal-launcher and set KAMAL_LAUNCHER_BIN"
  fi
  fetch_needed=$(awk 'tolower($1) == "content-length:" && $2 + 0 > 0 { n = $2 + 0 } END { if (n) print n }' \
    "$f_headers" 2>/dev/null) || fetch_needed=""
  # curl says only what went wrong; wget says much else, so all but its noise: headers and progress (indented), a
  # try's URL, steps that went well. Words for failures are not listed: each wget has its own ("No data
  # received.", "connection closed prematurely"), and a list would lose the next one. Each reason said once.
  fetch_reason=$(
    if [ "$f_headers" = "$fetch_err" ]; then
      awk '
        /^[ \t]/ || /^--[0-9]/ || /^[ \t]*$/ { next }
        /^(Connecting to|Resolving|Saving to|saving to|Length:|Retrying\.|Reusing existing|HTTP request sent)/ &&
          !/fail|refused|error|timed out|[Nn]o data|closed/ { next }
        { sub(/^HTTP request sent, awaiting response\.\.\. */, ""); sub(/^[0-9-]+ [0-9:]+ (\([^)]*\) - )?/, "")
          if (!seen[$0]++) print }
      ' "$fetch_err"
    else
      sed -n p "$fetch_err"
    fi 2>/dev/null | sed -e 's#://[^/@ ]*@#://#g' -e 's/^/    /' | head -n 3
  ) || fetch_reason=""
  if [ -n "$stalled" ]; then
    fetch_reason="${fetch_reason:+$fetch_reason
}    nothing arrived for ${timeout}s, after $attempts attempts (BUNDLE_TIMEOUT sets how long to wait, BUNDLE_RETRY how many times to try again)"
  fi
  # What answered, for messages about the server: the last status line (a redirect's come first).
  fetch_status=$(awk '/^[ \t]*HTTP\/[0-9.]+ [0-9][0-9][0-9]/ { sub(/\r$/, ""); sub(/^[ \t]*HTTP\/[0-9.]+ /, "")
    sub(/[ \t]+$/, ""); s = $0 } END { print s }' "$f_headers" 2>/dev/null) || fetch_status=""
  case $f_tool in
    curl) fetch_tries=$(grep -c '^curl: (' "$fetch_err" 2>/dev/null) || fetch_tries=1 ;;
    gnu-wget) fetch_tries=$(($(grep -c 'Retrying\.' "$fetch_err" 2>/dev/null || true) + 1)) ;;
    ruby) { read -r fetch_tries <"$work/tries"; } 2>/dev/null || fetch_tries=1 ;;
    *) fetch_tries=${f_try:-1} ;;
  esac
  [ "$fetch_tries" -gt 0 ] 2>/dev/null || fetch_tries=1
  fetch_why=""
  if [ -z "$fetch_status" ] && [ -z "$stalled" ]; then
    if grep -qi 'refused' "$fetch_err" 2>/dev/null; then
      fetch_why="connection refused"
    elif grep -qiE 'resolv|not known|bad address' "$fetch_err" 2>/dev/null; then
      fetch_why="the host could not be resolved"
    elif grep -qiE 'certificate|self.signed|issuer' "$fetch_err" 2>/dev/null; then
      fetch_why="its TLS certificate is not trusted"
    elif grep -qiE "couldn.t connect|can.t connect|failed to connect|unreachable" "$fetch_err" 2>/dev/null; then
      fetch_why="could not connect"
    fi
  fi
  rm -f "$f_out"
  return 1
}

# server_failed BASE PATH: stops, when the fetch of BASE+PATH that just failed was the server's fault (no answer,
# an error status), with one line about the server (BASE, never a gem) and the likely cause. Returns when it was
# not (a body that stalled, a tool's own failure) or the server said it has no such file (a 4xx): the caller says
# what that means.
server_failed() {
  # As the launcher says them: "gem source URL" or "mirror URL (for SOURCE)" answered; could not reach "URL" or
  # "URL, the mirror for SOURCE".
  sf_shown="gem source $(redact "$1")"
  sf_reach=$(redact "$1")
  sf_check="is the server up, and is the source URL right? Check the network and any proxy, or set BUNDLE_MIRROR__ALL to a mirror"
  sf_where="the source URL right (the lockfile's remote:)"
  if [ "$1" = "$mirror" ]; then
    sf_shown="mirror $(redact "$1") (for $(redact "$source_base"))"
    sf_reach="$sf_reach, the mirror for $(redact "$source_base")"
    sf_check="is the mirror up? $(redact "$1") is the mirror configured for $(redact "$source_base") (a BUNDLE_MIRROR__* setting): fix or remove it, or give it a fallback_timeout so the source is used when it is down"
    sf_where="the mirror's URL right (a BUNDLE_MIRROR__* setting)"
  fi
  sf_tries=""
  [ "$fetch_tries" -le 1 ] || sf_tries="$fetch_tries tries"
  case $fetch_status in
    '')
      [ -n "$fetch_why" ] || return 0
      case $fetch_why in
        *TLS*) sf_hint="if it is signed by a private CA, point SSL_CERT_FILE (or curl's CURL_CA_BUNDLE) at that CA's certificate" ;;
        *) sf_hint=$sf_check ;;
      esac
      die "could not reach $sf_reach ($fetch_why${sf_tries:+, $sf_tries})
  hint: $sf_hint"
      ;;
    401* | 407*)
      sf_host=$(printf '%s' "$1" | sed -e 's#^[a-zA-Z][a-zA-Z0-9+.-]*://##' -e 's#^[^/@]*@##' -e 's#[/:].*##')
      die "$sf_shown answered HTTP $fetch_status for $2
  hint: it wants credentials, and got none or wrong ones: set them as Bundler reads them (\`bundle config set --global $sf_host user:password\`)"
      ;;
    408* | 429* | 5*)
      die "$sf_shown answered HTTP $fetch_status for $2${sf_tries:+ ($sf_tries)}
  hint: the server is failing, not this machine: try again later (BUNDLE_RETRY sets how many tries), or set BUNDLE_MIRROR__ALL to a mirror meanwhile"
      ;;
  esac
  return 0
}

# watched_wget URL OUT: BusyBox's wget has no stall timeout that works (-T crashes 1.35; Debian builds it without
# one): a watchdog stops it once OUT has not grown for $timeout seconds, as the launcher's read timeout would.
watched_wget() {
  LC_ALL=C wget -q -S -O "$2" "$1" 2>"$fetch_err" &
  w_pid=$!
  w_seen=""
  w_quiet=0
  w_ticks=0
  while kill -0 "$w_pid" 2>/dev/null; do
    if sleep 0.1 2>/dev/null; then w_ticks=$((w_ticks + 1)); else sleep 1; w_ticks=$((w_ticks + 10)); fi
    [ "$w_ticks" -ge 10 ] || continue
    w_ticks=0
    w_size=$(wc -c 2>/dev/null <"$2" || echo none)
    if [ "$w_size" != "$w_seen" ]; then
      w_seen=$w_size
      w_quiet=0
    else
      w_quiet=$((w_quiet + 1))
      if [ "$w_quiet" -ge "$timeout" ]; then
        stalled=1
        kill "$w_pid" 2>/dev/null || true
      fi
    fi
  done
  wait "$w_pid"
}

# sha256 FILE: its digest, read from stdin: given a name holding a backslash or a newline, sha256sum escapes it and
# prefixes its line with "\".
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum <"$1" | awk '{ print $1 }'
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 <"$1" | awk '{ print $1 }'
  elif command -v ruby >/dev/null 2>&1; then
    # shellcheck disable=SC2016
    RUBYOPT='' ruby --disable-gems -rdigest -e '$stdin.binmode; d = Digest::SHA256.new
      while (c = $stdin.read(65536)); d << c; end; puts d.hexdigest' <"$1"
  else
    die "verifying kamal-launcher needs sha256sum, shasum or ruby"
  fi
}

# no_room WHAT NEEDED [WORDS]: stops with a message saying so when the disk holding $dir has less room than WHAT
# needs (NEEDED bytes; when that is unknown, when the tools' own words, WORDS or $fetch_err, were that the disk is
# full), so that a full disk is not reported as a gem or network problem. "No space left" with bytes free is a
# filesystem out of inodes: freeing bytes would not help, so that is what is said.
no_room() {
  free=$(LC_ALL=C df -Pk "$dir" 2>/dev/null | awk 'NR == 2 && $4 ~ /^[0-9]+$/ { printf "%.0f\n", $4 * 1024 }') ||
    free=""
  [ -n "$free" ] || return 0
  if [ -n "$2" ] && [ "$2" -gt 0 ]; then
    [ "$free" -lt "$2" ] || return 0
    need="$1 needs $2 bytes there, and $free are free"
  elif { printf '%s\n' "${3:-}"; cat "$fetch_err" 2>/dev/null; } |
    grep -qE 'No space left|Disk quota|Failure writing|write error'; then
    if inodes_out; then
      die "the filesystem holding $dir has run out of inodes: $1 could not create a file there, though $free bytes are free
  hint: remove files from that filesystem (freeing bytes will not help), or set KAMAL_LAUNCHER_CACHE_DIR to a directory on another one"
    fi
    need="$1 could not write there, and $free bytes are free"
  else
    return 0
  fi
  die "the disk holding $dir is full: $need
  hint: free some space there, or set KAMAL_LAUNCHER_CACHE_DIR to a directory on a disk with room"
}

# inodes_out: whether the filesystem holding $dir has no inode left. `df -i` is not POSIX, but GNU's, BusyBox's and
# macOS's have it: the column is IFree (GNU), ifree (macOS), or the fourth after "Inodes" (BusyBox); without it,
# this says no.
inodes_out() {
  ifree=$(LC_ALL=C df -Pi "$dir" 2>/dev/null | awk '
    NR == 1 { for (i = 1; i <= NF; i++) if (tolower($i) == "ifree") c = i; if (!c && $2 == "Inodes") c = 4 }
    NR == 2 && c && $c ~ /^[0-9]+$/ { print $c }') || ifree=""
  [ "$ifree" = 0 ]
}

# Bundler's settings for the source URL $1: app .bundle/config over the environment over ~/.bundle/config.
# Prints ten lines: the mirror (the first of mirror.all, mirror.<source>, mirror.<host>), its
# fallback_timeout, the mirror's and the source's credentials (userinfo in the URL, else the setting for the
# full URI, else for the host), the source's URL without credentials (its scheme kept), `timeout` in whole seconds
# and in tenths, `retry`, where the mirror was set (the variable, or the key and its file), and a final ".". Unset
# or unreadable, timeout and retry are Bundler's 10 and 3, as the launcher reads them.
source_settings() {
  app_config=$app/${BUNDLE_APP_CONFIG:-.bundle}/config
  case ${BUNDLE_APP_CONFIG:-} in /*) app_config=$BUNDLE_APP_CONFIG/config ;; esac
  user_config=${BUNDLE_USER_CONFIG:-${HOME:-/nonexistent}/.bundle/config}
  [ -f "$app_config" ] || app_config=/dev/null
  [ -f "$user_config" ] || user_config=/dev/null
  awk -v remote="$1" -v app_file="$app_config" '
    function dotted(k) { k = substr(k, 8); gsub(/___/, "-", k); gsub(/__/, ".", k); return tolower(k) }
    function slash(u) { return u ~ /\/$/ ? u : u "/" }
    function host(u) { sub(/^[^:]*:\/\//, "", u); sub(/\/.*/, "", u); sub(/^.*@/, "", u); sub(/:[0-9]*$/, "", u); return tolower(u) }
    function bare(u,   scheme) {
      if (u !~ /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\/@]*@/) return u
      scheme = substr(u, 1, index(u, "://") + 2); sub(/^[^:]*:\/\/[^\/@]*@/, "", u)
      return scheme u
    }
    function userinfo(u) { if (u !~ /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\/@]*@/) return ""; sub(/^[^:]*:\/\//, "", u); sub(/@.*/, "", u); return u }
    function cred(u,   plain, info) {
      info = userinfo(u)
      if (info != "") return info
      plain = tolower(slash(bare(u)))
      if (plain in set) return set[plain]
      return (host(u) in set) ? set[host(u)] : ""
    }
    function mirror_key(k) { sub(/^mirror\./, "", k); sub(/\/$/, "", k); return k }
    { layer = (FILENAME == app_file) ? 2 : 1 }
    # `KEY: value` where the key may itself hold "://" (mirror.https://...), never ": ".
    /^[ \t]*"?BUNDLE_/ && index($0, ": ") {
      k = substr($0, 1, index($0, ": ") - 1); sub(/^[ \t]*"?/, "", k); sub(/"$/, "", k)
      v = substr($0, index($0, ": ") + 2); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
      if (v ~ /^".*"$/) { v = substr(v, 2, length(v) - 2); gsub(/\\"/, "\"", v) }
      else if (v ~ /^\047.*\047$/) v = substr(v, 2, length(v) - 2)
      file_set[layer, dotted(k)] = v; keys[dotted(k)] = 1; file_from[layer, dotted(k)] = k " in " FILENAME
    }
    END {
      # Lowest precedence first: the user file, the environment, the app file.
      for (k in keys) if ((1, k) in file_set) { set[k] = file_set[1, k]; from[k] = file_from[1, k] }
      for (e in ENVIRON) if (e ~ /^BUNDLE_/) { set[dotted(e)] = ENVIRON[e]; from[dotted(e)] = e }
      for (k in keys) if ((2, k) in file_set) { set[k] = file_set[2, k]; from[k] = file_from[2, k] }
      want = tolower(slash(bare(remote))); sub(/\/$/, "", want)
      h = host(remote)
      for (k in set) {
        if (k !~ /^mirror\./) continue
        t = (k ~ /\.fallback_timeout$/); m = k; sub(/\.fallback_timeout$/, "", m); m = mirror_key(m)
        if (m == "all") slot = "all"; else if (m == want) slot = "own"; else if (m == h) slot = "host"; else continue
        if (t) timeout[slot] = set[k]; else { mirror[slot] = set[k]; mirror_from[slot] = from[k] }
      }
      if (!("own" in mirror) && ("host" in mirror)) {
        mirror["own"] = mirror["host"]; mirror_from["own"] = mirror_from["host"]
        if ("host" in timeout) timeout["own"] = timeout["host"]
      }
      chosen = ("all" in mirror) ? "all" : (("own" in mirror) ? "own" : "")
      m = chosen == "" ? "" : slash(mirror[chosen])
      print (m == "" ? "" : bare(m)); print (chosen == "" ? "" : timeout[chosen])
      print (m == "" ? "" : cred(m)); print cred(remote); print slash(bare(remote))
      t = ("timeout" in set && set["timeout"] ~ /^[ \t]*[0-9]*\.?[0-9]+[ \t]*$/ && set["timeout"] + 0 > 0) ? set["timeout"] + 0 : 10
      print (t == int(t) ? t : int(t) + 1); print int(t * 10 + 0.999)
      print (("retry" in set) && set["retry"] ~ /^[ \t]*[0-9]+[ \t]*$/ ? set["retry"] + 0 : 3)
      print (chosen == "" ? "" : mirror_from[chosen]); print "."
    }
  ' "$user_config" "$app_config"
}

# take_lock: returns 0 holding $dir/.lock, 1 when another run cached the launcher meanwhile. The lock is a symlink
# naming its holder as pid@host, made atomically; one whose holder is gone is broken: a pid this host no longer
# runs, or this very pid (the lock a container's pid 1 left, found by the next container's pid 1). A lock that
# cannot be made at all (not writable, read-only, no inodes) is said at once. A pid alone cannot say whether its
# holder still runs: a new PID namespace reuses it (tini as pid 1), and another host's cannot be asked. What can be
# seen is progress: a live holder writes its download into $dir/.tmp.<holder>, and gives up itself once nothing
# arrives for BUNDLE_TIMEOUT (retries included, a few times that). So a holder whose work directory has not changed
# for 3 times that and 2 s more is taken over, and none is waited for past 60 times BUNDLE_TIMEOUT. Were its holder
# alive after all, both would publish a whole, verified binary by rename.
take_lock() {
  lockf=$dir/.lock
  host=$(uname -n 2>/dev/null) || host=""
  me=$$@${host:-localhost}
  waited=0
  quiet=0
  seen=""
  told=""
  while ! made=$(LC_ALL=C ln -s "$me" "$lockf" 2>&1); do
    case $made in
      *"File exists"*) ;;
      *"No space left"*)
        if inodes_out; then
          die "cannot create the lock $lockf: ${made##*: }: the filesystem holding $dir has run out of inodes (freeing bytes will not help)
  hint: remove files from that filesystem, or set KAMAL_LAUNCHER_CACHE_DIR to a directory of your own on another one"
        fi
        die "cannot create the lock $lockf: ${made##*: }
  hint: free some space there, or set KAMAL_LAUNCHER_CACHE_DIR to a directory of your own on a disk with room"
        ;;
      *) die "cannot create the lock $lockf: ${made##*: }
  hint: set KAMAL_LAUNCHER_CACHE_DIR to a directory of your own that you can write to" ;;
    esac
    ! check_launcher "$pinned" || return 1
    holder=$(readlink "$lockf" 2>/dev/null) || holder=""
    holder_pid=${holder%%@*}
    holder_host=${holder#*@}
    [ "$holder_host" != "$holder" ] || holder_host=${host:-localhost}
    case $holder_pid in
      '') continue ;;
      *[!0-9]*) gone=1 ;;
      "$$") gone=1 ;;
      *)
        gone=""
        if [ "$holder_host" = "${host:-localhost}" ]; then
          # Another user's live process answers "not permitted": only "no such process" means gone.
          case $(LC_ALL=C kill -0 "$holder_pid" 2>&1) in *"No such process"*) gone=1 ;; esac
        fi
        ;;
    esac
    if [ -n "$gone" ]; then
      break_lock "pid $holder_pid on $holder_host, which holds it, is gone"
      continue
    fi
    if [ -z "$told" ]; then
      told=1
      say "waiting for pid $holder_pid on $holder_host, which holds $lockf and is fetching kamal-launcher $pin"
    fi
    if [ "$waited" -ge $((timeout_tenths * 60)) ]; then
      say "$lockf has been held by pid $holder_pid on $holder_host for $((waited / 10))s, longer than a download may take (60 times BUNDLE_TIMEOUT); taking it over"
      break_lock "pid $holder_pid on $holder_host has held it for $((waited / 10))s, longer than a download may take"
      stale_work=$dir/.tmp.$holder
      waited=0
      quiet=0
      continue
    fi
    # Once a second, the holder's work directory (names and sizes: the download growing) and the lock itself.
    if [ $((waited % 10)) = 0 ]; then
      if ! sample="$holder $(LC_ALL=C ls -lnA "$dir/.tmp.$holder" 2>/dev/null)"; then
        # Another user's (private) work directory shows no progress to see: only the 60 times bound applies.
        [ ! -d "$dir/.tmp.$holder" ] || sample="unreadable $waited"
      fi
      if [ "$sample" != "$seen" ]; then
        seen=$sample
        quiet=$waited
      elif [ $((waited - quiet)) -ge $((timeout_tenths * 3 + 20)) ]; then
        if [ -d "$dir/.tmp.$holder" ]; then
          still="nothing in its download, $dir/.tmp.$holder, has changed"
        else
          still="it has not started a download"
        fi
        say "$lockf has been held by pid $holder_pid on $holder_host, and $still for $(((waited - quiet) / 10))s (3 times BUNDLE_TIMEOUT and more): that pid is not a bin/kamal still fetching (a container's pid reused, or a run killed); taking it over"
        break_lock "pid $holder_pid on $holder_host, which holds it, has not fetched anything for $(((waited - quiet) / 10))s"
        stale_work=$dir/.tmp.$holder
        waited=0
        quiet=0
        seen=""
        continue
      fi
    fi
    if sleep 0.1 2>/dev/null; then waited=$((waited + 1)); else sleep 1; waited=$((waited + 10)); fi
  done
  return 0
}

# break_lock WHY: removes $lockf, a stale lock (WHY says why it is). In a shared directory (sticky, 1777) only its
# owner or root may, so another user's is named with the fix rather than left to rm's own words.
break_lock() {
  rm -f "$lockf" 2>/dev/null && return 0
  # Gone meanwhile (its holder finished): nothing to remove.
  [ -L "$lockf" ] || return 0
  lock_line=$(LC_ALL=C ls -ldn "$lockf" 2>/dev/null) || lock_line=""
  read -r _ _ lock_owner _ <<EOF
$lock_line
EOF
  die "cannot remove the stale lock $lockf: $1, but the lock belongs to ${lock_owner:+uid $lock_owner, }another user, and only they or root may remove it from $dir
  hint: ask them to run bin/kamal again (or remove it: rm $lockf), or set KAMAL_LAUNCHER_CACHE_DIR to a directory of your own"
}

# release_lock: removes the lock if it is still this run's (a lock broken as stale may have been taken since).
release_lock() {
  [ "$(readlink "$lockf" 2>/dev/null)" != "$me" ] || rm -f "$lockf"
}

finish() {
  rm -rf "$work"
  release_lock
  trap - EXIT INT TERM
}

# record SIZE SHA256: marks the cached binary as verified, durably and only once the binary itself is on disk.
record() {
  { printf '%s %s\n' "$1" "$2" >"$work/ok" && flush "$work/ok" && mv -f "$work/ok" "$pinned.ok" && flush "$dir"; } ||
    die "could not write $pinned.ok, which records that the launcher was verified; check that $dir is writable"
}

# download_failed BASE URL: stops with why the gem at URL (under BASE) could not be downloaded.
download_failed() {
  server_failed "$1" "${2#"$1"}"
  case $fetch_status in
    4*) die "$sf_shown answered HTTP $fetch_status for ${2#"$1"}
  hint: is $sf_where? If it is, kamal-launcher $pin may have been yanked, or the mirror is incomplete" ;;
  esac
  die "could not download $(redact "$2"):
$fetch_reason"
}

# Downloads, verifies and caches the pinned launcher; on return "$pinned" is a complete, verified binary, on disk
# with its record.
fetch_pinned() {
  if [ -z "$cache" ]; then
    # The launcher's words (error.rs, NoCacheDir), and what a relative HOME is taken for.
    unset_home="HOME is not set"
    [ -z "${HOME:-}" ] || unset_home="HOME (\"$HOME\") is not an absolute path"
    die "no cache directory: $unset_home (nor XDG_CACHE_HOME), so the default ~/.cache/kamal-launcher has no place to go
  hint: set KAMAL_LAUNCHER_CACHE_DIR to the directory the cache should live in (or set cache_dir in .kamal-launcher.toml)"
  fi
  platforms=$(kl_platforms) || die "no prebuilt kamal-launcher exists for $(uname -sm); build it with \`cargo install kamal-launcher\` and set KAMAL_LAUNCHER_BIN to it"
  [ -n "$remote" ] || die "kamal-launcher $pin is not locked from a GEM source in $lock, so there is nothing to download; install it and set KAMAL_LAUNCHER_BIN"
  dir=${pinned%/*}
  # Not through the umask: a directory it left writable by others would be refused on the next run.
  made=$(umask 022 && LC_ALL=C mkdir -p "$dir" 2>&1) ||
    die "cannot create $dir: ${made##*: }
  hint: set KAMAL_LAUNCHER_CACHE_DIR to a directory of your own that you can write to"
  inspect "$dir" ||
    die "cannot read who owns $dir, or a directory above it; set KAMAL_LAUNCHER_CACHE_DIR to a directory of your own"
  { read -r mirror; read -r mirror_fallback; read -r mirror_cred; read -r source_cred; read -r source_base
    read -r timeout; read -r timeout_tenths; read -r retries; read -r mirror_from; } <<EOF
$(source_settings "$remote")
EOF
  # Anything else would reach curl, wget or Ruby as an option (`-o…`, `--config=…`) or another scheme.
  case $source_base in
    http://?* | https://?*) ;;
    *) die "the GEM source of kamal-launcher $pin, \"$(redact "$remote")\" (the remote: line in $lock), is not an http(s) URL, so there is nothing to download it from
  hint: fix that line (\`bundle lock\` writes it from the Gemfile's source), or install kamal-launcher and set KAMAL_LAUNCHER_BIN" ;;
  esac
  case $mirror in
    '' | http://?* | https://?*) ;;
    *) die "the mirror for $(redact "$source_base"), \"$(redact "$mirror")\" (set by $mirror_from), is not an http(s) URL
  hint: set it to the mirror's http(s) URL, or remove it" ;;
  esac
  base=${mirror:-$source_base}
  cred=$mirror_cred
  [ -n "$mirror" ] || cred=$source_cred

  # One download however many first runs start at once; the binary appears only by rename.
  take_lock || return 0
  work=$dir/.tmp.$me
  trap 'rm -rf "$work"; release_lock' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if check_launcher "$pinned"; then
    finish
    return 0
  fi
  # Left by runs that were killed: gone from this host, or this very pid's predecessor. Another host's are left to
  # it (its lock may have been taken over), and older bin/kamals' (no @) are removed.
  for old in "$dir"/.tmp.*; do
    [ -e "$old" ] || continue
    owner=${old##*/.tmp.}
    # The one of the holder whose lock was taken over is stale whatever its pid now names.
    [ "$old" != "${stale_work:-}" ] || owner=""
    case $owner in
      *@*)
        [ "${owner#*@}" = "${host:-localhost}" ] || continue
        if [ "${owner%%@*}" != "$$" ]; then
          case $(LC_ALL=C kill -0 "${owner%%@*}" 2>&1) in *"No such process"*) ;; *) continue ;; esac
        fi
        ;;
    esac
    # Another user's, in a shared (sticky) directory, is theirs to remove.
    rm -rf "$old" 2>/dev/null || true
  done
  fetch_err=$work/err
  # The first file too: a filesystem out of inodes may still have made the directory.
  made=$(LC_ALL=C mkdir -m 700 "$work" 2>&1 && { : >"$fetch_err"; } 2>&1) || {
    no_room "fetching kamal-launcher" "" "$made"
    die "cannot create $work: ${made##*: }"
  }
  # Bytes still those verified, only their time changed (a copy, a restore): nothing to download.
  if [ -n "$rec_sha" ] && [ "$(sha256 "$pinned")" = "$rec_sha" ]; then
    record "$(($(wc -c <"$pinned")))" "$rec_sha"
    finish
    return 0
  fi
  [ -z "$damage" ] || say "$pinned is damaged: $damage; fetching it again"

  # This machine's variant: the lockfile's, else the source's compact index (which also gives the checksum).
  platform=""
  expected=""
  for candidate in $platforms; do
    case " $variants " in *" $candidate "*) platform=$candidate; break ;; esac
  done
  if [ -n "$platform" ]; then
    for entry in $sums; do
      case $entry in "$platform="*) expected=${entry#*=} ;; esac
    done
  fi
  if [ -z "$expected" ]; then
    info=$work/info
    if fetch "${base}info/kamal-launcher" "$cred" "$info"; then
      for candidate in ${platform:-$platforms}; do
        expected=$(awk -v want="$pin-$candidate" '
          $1 == want { n = split($0, parts, "|"); m = split(parts[n], kv, ","); for (i = 1; i <= m; i++) if (kv[i] ~ /^checksum:/) print tolower(substr(kv[i], 10)) }
        ' "$info")
        if [ -n "$expected" ]; then
          checksum_origin="$(redact "${base}info/kamal-launcher")"
          platform=$candidate
          break
        fi
      done
    else
      no_room "reading $(redact "${base}info/kamal-launcher")" "$fetch_needed"
      server_failed "$base" info/kamal-launcher
      # No compact index there (a 4xx): a source problem, unless unverified use is allowed (below).
      if [ -n "$fetch_status" ]; then
        index_failed="$sf_shown answered HTTP $fetch_status for info/kamal-launcher"
        index_hint="is $sf_where, and does it serve the compact index?"
      else
        index_failed="could not read $(redact "${base}info/kamal-launcher"):
$fetch_reason"
        index_hint="run again; if it persists, the server or a proxy in between is failing"
      fi
    fi
  fi
  if [ -z "$platform" ]; then
    [ -z "${index_failed:-}" ] || die "kamal-launcher $pin for this machine ($platforms) is not in $lock, and $index_failed
  hint: $index_hint"
    die "kamal-launcher $pin has no variant for this machine ($platforms), neither in $lock nor in $(redact "$base")'s index; build it with \`cargo install kamal-launcher\` and set KAMAL_LAUNCHER_BIN"
  fi
  if [ -z "$expected" ]; then
    if [ "${KAMAL_LAUNCHER_ALLOW_UNVERIFIED:-}" = 1 ]; then
      say "warning: no checksum is known for kamal-launcher $pin-$platform (none in $lock's CHECKSUMS, none from the index); running it unverified because KAMAL_LAUNCHER_ALLOW_UNVERIFIED=1"
    else
      # A source without an index is a source problem: switching verification off is not the fix.
      [ -z "${index_failed:-}" ] || die "$index_failed
  hint: $index_hint"
      die "no checksum is known for kamal-launcher $pin-$platform: $lock has no CHECKSUMS entry, and $(redact "${base}info/kamal-launcher") lists none for it
  hint: run \`bundle lock --add-checksums\` (Bundler >= 2.6), or set KAMAL_LAUNCHER_ALLOW_UNVERIFIED=1 to run it unverified"
    fi
  fi

  url=${base}gems/kamal-launcher-$pin-$platform.gem
  gem=$work/gem
  say "fetching kamal-launcher $pin ($platform) from $(redact "$url")"
  if ! fetch "$url" "$cred" "$gem"; then
    no_room "downloading $(redact "$url")" "$fetch_needed"
    if [ -n "$mirror" ] && [ -n "$mirror_fallback" ] && [ "$mirror_fallback" != false ]; then
      # Bundler's fallback_timeout: a mirror that fails gives way to the source itself.
      url=${source_base}gems/kamal-launcher-$pin-$platform.gem
      say "the mirror failed; fetching from the source, $(redact "$url")"
      if ! fetch "$url" "$source_cred" "$gem"; then
        no_room "downloading $(redact "$url")" "$fetch_needed"
        download_failed "$source_base" "$url"
      fi
    else
      download_failed "$base" "$url"
    fi
  fi
  actual=$(sha256 "$gem")
  if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $(redact "$url"):
  expected sha256 $expected (from ${checksum_origin:-$lock})
  actual   sha256 $actual
  hint: nothing was installed; check the source and any mirror or proxy in between"
  fi
  bin=$work/kamal-launcher
  if ! { tar -xOf "$gem" data.tar.gz | tar -xzOf - libexec/kamal-launcher >"$bin"; } 2>/dev/null || [ ! -s "$bin" ]; then
    rm -f "$bin"
    size=$(tar -xOf "$gem" data.tar.gz 2>/dev/null | tar -xzOf - libexec/kamal-launcher 2>/dev/null | wc -c) || size=0
    no_room "unpacking kamal-launcher from the $(($(wc -c <"$gem")))-byte gem" "$((size))"
    die "$(redact "$url") holds no libexec/kamal-launcher; is it a kamal-launcher platform gem?"
  fi
  chmod 755 "$bin"
  # BusyBox's `[ -x ]` as root reads the mode alone: running it once tells a noexec mount (126) on any shell.
  ran=0
  [ ! -x "$bin" ] || "$bin" --version >/dev/null 2>&1 </dev/null || ran=$?
  if ! [ -x "$bin" ] || [ "$ran" = 126 ]; then
    noexec "$pinned"
  fi
  size=$(($(wc -c <"$bin")))
  digest=$(sha256 "$bin")
  # On disk before it is published, published before it is recorded: a crash at any point leaves either no
  # record (the next run fetches again) or the record of a binary that is whole.
  flush "$bin"
  rm -f "$pinned.ok"
  mv -f "$bin" "$pinned"
  flush "$dir"
  record "$size" "$digest"
  finish
  say "verified and cached kamal-launcher $pin in $dir"
}

if [ -z "$launcher" ]; then
  if [ -z "$pin" ]; then
    say "kamal-launcher is not installed, and ${lock##*/} pins no version of it to fetch"
    echo "  hint: pin it once in the app: bundle add kamal-launcher --group development --require false" >&2
    echo "        or install it (gem install kamal-launcher, or cargo install kamal-launcher), or set KAMAL_LAUNCHER_BIN" >&2
    echo "        (the Bundler binstub is still in bin/kamal.bundler if you kept one)" >&2
    exit 127
  fi
  fetch_pinned
  launcher=$pinned
  remember_pin
fi

# Tells the launcher to give advice that works from here (variables, not flags); it is not passed on to kamal.
KAMAL_LAUNCHER_SHIM=1
export KAMAL_LAUNCHER_SHIM
if [ "${KAMAL_LAUNCHER_CLI:-}" = 1 ]; then
  exec "$launcher" --lockfile "$lock" "$@"
fi
exec "$launcher" --lockfile "$lock" exec -- "$@"
