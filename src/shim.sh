#!/bin/sh
# Runs the kamal locked in @LOCKFILE@ through kamal-launcher: only kamal and its locked dependencies are
# installed (in an isolated cache) and loaded, never the rest of the Gemfile.
# Written by `kamal-launcher init`; the previous bin/kamal, if any, was kept as bin/kamal.bundler.
#
# The launcher used: KAMAL_LAUNCHER_BIN; else the cached copy of the kamal-launcher version @LOCKFILE@ pins;
# else kamal-launcher on PATH or in a usual install directory; else the pinned version is downloaded from the
# lockfile's gem source (or its Bundler mirror), verified against its SHA-256 and cached. Fetching needs only
# sh, curl or wget, sha256sum or shasum, tar and gzip: no Ruby, no Bundler.
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

# The launcher's cache directory, by the launcher's own rules: KAMAL_LAUNCHER_CACHE_DIR, cache_dir in the
# app's .kamal-launcher.toml or the user's config.toml (read with the lockfile), else XDG_CACHE_HOME, else ~/.cache.
app_toml=$app/.kamal-launcher.toml
[ -f "$app_toml" ] || app_toml=/dev/null
case ${XDG_CONFIG_HOME:-} in
  /*) user_toml=$XDG_CONFIG_HOME/kamal-launcher/config.toml ;;
  *) user_toml=${HOME:-/nonexistent}/.config/kamal-launcher/config.toml ;;
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
         *) cache=${HOME:+$HOME/.cache/kamal-launcher} ;;
       esac ;;
  esac
}

# The warm path forks nothing: a memo in the cache, newer than the lockfile, names the pinned version. It only
# saves reading the lockfile: any launcher checks the pin itself and hands over when it is not the pinned one.
launcher=${KAMAL_LAUNCHER_BIN:-}
pin=""
if [ -z "$launcher" ] && [ "$app_toml$user_toml" = /dev/null/dev/null ]; then
  cache_dir ""
  memo=$cache/@LAYOUT@/launchers/pins$lock
  # -nt (POSIX.1-2024; dash, busybox, bash and macOS sh have it): where a shell lacks it, the test fails and
  # the lockfile is read, which is always right.
  # shellcheck disable=SC3013
  if [ -n "$cache" ] && [ "$memo" -nt "$lock" ] && read -r pin <"$memo"; then
    case $pin in
      *[!0-9A-Za-z.]*|'') pin="" ;;
      *) [ ! -x "$cache/@LAYOUT@/launchers/$pin/kamal-launcher" ] || launcher=$cache/@LAYOUT@/launchers/$pin/kamal-launcher ;;
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

# remember_pin: writes the memo (best effort: a read-only cache just keeps the slower path).
remember_pin() {
  { mkdir -p "${memo%/*}" && printf '%s\n' "$pin" >"$memo.$$" && mv -f "$memo.$$" "$memo"; } 2>/dev/null ||
    rm -f "$memo.$$" 2>/dev/null || true
}

if [ -z "$launcher" ] && [ -n "$pin" ] && [ -n "$cache" ] && [ -x "$pinned" ]; then
  launcher=$pinned
  remember_pin
fi
if [ -z "$launcher" ]; then
  launcher=$(command -v kamal-launcher 2>/dev/null || true)
fi
if [ -z "$launcher" ]; then
  # install.sh's prefix, /usr/local, Homebrew, cargo install, and RubyGems' bin directories (gem install
  # --user-install, GEM_HOME, Homebrew's Ruby): a pattern that matches nothing stays as written and fails -x.
  for candidate in "${HOME:-/nonexistent}/.local/bin/kamal-launcher" /usr/local/bin/kamal-launcher \
    /opt/homebrew/bin/kamal-launcher "${CARGO_HOME:-${HOME:-/nonexistent}/.cargo}/bin/kamal-launcher" \
    "${GEM_HOME:-/nonexistent}/bin/kamal-launcher" "${HOME:-/nonexistent}"/.gem/ruby/*/bin/kamal-launcher \
    "${HOME:-/nonexistent}"/.local/share/gem/ruby/*/bin/kamal-launcher \
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
  echo "$1" | sed 's#^\([a-zA-Z][a-zA-Z0-9+.-]*://\)[^/@]*@#\1#'
}

# fetch URL CREDENTIALS OUT: downloads URL into OUT. Credentials never appear on a command line curl sees
# (they go through its config on stdin) nor in a message; a tool's own error text is shown redacted.
fetch() {
  fetch_err=$dir/.tmp.$$.err
  if command -v curl >/dev/null 2>&1; then
    if [ -n "$2" ]; then
      printf 'user = "%s"\n' "$(printf '%s' "$2" | sed 's/[\\"]/\\&/g')" |
        curl -fsSL --connect-timeout 10 --retry 2 -K - -o "$3" "$1" 2>"$fetch_err" && return 0
    else
      curl -fsSL --connect-timeout 10 --retry 2 -o "$3" "$1" 2>"$fetch_err" && return 0
    fi
  elif command -v wget >/dev/null 2>&1; then
    url=$1
    [ -z "$2" ] || url=${1%%://*}://$2@${1#*://}
    # No -T: BusyBox 1.35's wget crashes with it.
    wget -q -O "$3" "$url" 2>"$fetch_err" && return 0
  else
    die "downloading kamal-launcher needs curl or wget; install one, or install kamal-launcher and set KAMAL_LAUNCHER_BIN"
  fi
  fetch_reason=$(sed -e 's#://[^/@ ]*@#://#g' -e 's/^/    /' "$fetch_err" | head -n 3)
  rm -f "$3" "$fetch_err"
  return 1
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{ print $1 }'
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | awk '{ print $1 }'
  else
    die "verifying kamal-launcher needs sha256sum or shasum"
  fi
}

# Bundler's settings for the source URL $1: app .bundle/config over the environment over ~/.bundle/config.
# Prints five lines: the mirror (the first of mirror.all, mirror.<source>, mirror.<host>), its
# fallback_timeout, the mirror's and the source's credentials (userinfo in the URL, else the setting for the
# full URI, else for the host), the source's URL without credentials, and a final ".".
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
    function bare(u) { sub(/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\/@]*@/, "", u); return u }
    function userinfo(u) { if (u !~ /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\/@]*@/) return ""; sub(/^[^:]*:\/\//, "", u); sub(/@.*/, "", u); return u }
    function cred(u,   plain, info) {
      info = userinfo(u)
      if (info != "") return info
      plain = tolower(slash(u)); sub(/^[a-z][a-z0-9+.-]*:\/\/[^\/@]*@/, "", plain)
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
      file_set[layer, dotted(k)] = v; keys[dotted(k)] = 1
    }
    END {
      # Lowest precedence first: the user file, the environment, the app file.
      for (k in keys) if ((1, k) in file_set) set[k] = file_set[1, k]
      for (e in ENVIRON) if (e ~ /^BUNDLE_/) set[dotted(e)] = ENVIRON[e]
      for (k in keys) if ((2, k) in file_set) set[k] = file_set[2, k]
      want = tolower(slash(bare(remote))); sub(/\/$/, "", want)
      h = host(remote)
      for (k in set) {
        if (k !~ /^mirror\./) continue
        t = (k ~ /\.fallback_timeout$/); m = k; sub(/\.fallback_timeout$/, "", m); m = mirror_key(m)
        if (m == "all") slot = "all"; else if (m == want) slot = "own"; else if (m == h) slot = "host"; else continue
        if (t) timeout[slot] = set[k]; else mirror[slot] = set[k]
      }
      if (!("own" in mirror) && ("host" in mirror)) { mirror["own"] = mirror["host"]; if ("host" in timeout) timeout["own"] = timeout["host"] }
      chosen = ("all" in mirror) ? "all" : (("own" in mirror) ? "own" : "")
      m = chosen == "" ? "" : slash(mirror[chosen])
      print (m == "" ? "" : bare(m)); print (chosen == "" ? "" : timeout[chosen])
      print (m == "" ? "" : cred(m)); print cred(remote); print slash(bare(remote)); print "."
    }
  ' "$user_config" "$app_config"
}

# Downloads, verifies and caches the pinned launcher; on return "$pinned" is a complete, verified binary.
fetch_pinned() {
  [ -n "$cache" ] || die "HOME is not set, so there is no cache to fetch kamal-launcher into; set KAMAL_LAUNCHER_CACHE_DIR"
  platforms=$(kl_platforms) || die "no prebuilt kamal-launcher exists for $(uname -sm); build it with \`cargo install kamal-launcher\` and set KAMAL_LAUNCHER_BIN to it"
  [ -n "$remote" ] || die "kamal-launcher $pin is not locked from a GEM source in $lock, so there is nothing to download; install it and set KAMAL_LAUNCHER_BIN"
  dir=${pinned%/*}
  mkdir -p "$dir" 2>/dev/null || die "cannot create $dir; set KAMAL_LAUNCHER_CACHE_DIR to a writable directory"

  # One download however many first runs start at once: the lock is a symlink naming its holder's pid, made
  # atomically; a dead holder's lock (kill -9) is broken by the next run. The binary appears only by rename.
  lockf=$dir/.lock
  while ! ln -s "$$" "$lockf" 2>/dev/null; do
    [ ! -x "$pinned" ] || return 0
    holder=$(readlink "$lockf" 2>/dev/null || true)
    if [ -n "$holder" ] && ! kill -0 "$holder" 2>/dev/null; then
      rm -f "$lockf"
      continue
    fi
    sleep 0.1 2>/dev/null || sleep 1
  done
  trap 'rm -f "$lockf" "$dir/.tmp.$$".*' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [ -x "$pinned" ]; then
    rm -f "$lockf"
    trap - EXIT INT TERM
    return 0
  fi
  # Left by runs that were killed: only the lock's holder writes here.
  rm -f "$dir"/.tmp.*

  { read -r mirror; read -r mirror_fallback; read -r mirror_cred; read -r source_cred; read -r source_base; } <<EOF
$(source_settings "$remote")
EOF
  base=${mirror:-$source_base}
  cred=$mirror_cred
  [ -n "$mirror" ] || cred=$source_cred

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
    info=$dir/.tmp.$$.info
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
      index_failed="could not read $(redact "${base}info/kamal-launcher"):
$fetch_reason"
    fi
  fi
  if [ -z "$platform" ]; then
    [ -z "${index_failed:-}" ] || die "kamal-launcher $pin for this machine ($platforms) is not in $lock, and $index_failed"
    die "kamal-launcher $pin has no variant for this machine ($platforms), neither in $lock nor in $(redact "$base")'s index; build it with \`cargo install kamal-launcher\` and set KAMAL_LAUNCHER_BIN"
  fi
  if [ -z "$expected" ]; then
    if [ "${KAMAL_LAUNCHER_ALLOW_UNVERIFIED:-}" = 1 ]; then
      say "warning: no checksum is known for kamal-launcher $pin-$platform (none in $lock's CHECKSUMS, none from the index); running it unverified because KAMAL_LAUNCHER_ALLOW_UNVERIFIED=1"
    else
      die "no checksum is known for kamal-launcher $pin-$platform: $lock has no CHECKSUMS entry and the source's index gave none${index_failed:+ ($index_failed)}. Run \`bundle lock --add-checksums\` (Bundler >= 2.6), or set KAMAL_LAUNCHER_ALLOW_UNVERIFIED=1 knowingly"
    fi
  fi

  url=${base}gems/kamal-launcher-$pin-$platform.gem
  gem=$dir/.tmp.$$.gem
  say "fetching kamal-launcher $pin ($platform) from $(redact "$url")"
  if ! fetch "$url" "$cred" "$gem"; then
    if [ -n "$mirror" ] && [ -n "$mirror_fallback" ] && [ "$mirror_fallback" != false ]; then
      # Bundler's fallback_timeout: a mirror that fails gives way to the source itself.
      url=${source_base}gems/kamal-launcher-$pin-$platform.gem
      say "the mirror failed; fetching from the source, $(redact "$url")"
      fetch "$url" "$source_cred" "$gem" || die "could not download $(redact "$url"):
$fetch_reason"
    else
      die "could not download $(redact "$url"):
$fetch_reason"
    fi
  fi
  actual=$(sha256 "$gem")
  if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $(redact "$url"):
  expected sha256 $expected (from ${checksum_origin:-$lock})
  actual   sha256 $actual
  nothing was installed; check the source and any mirror or proxy in between"
  fi
  if ! tar -xOf "$gem" data.tar.gz >"$dir/.tmp.$$.data" 2>/dev/null ||
    ! tar -xzOf "$dir/.tmp.$$.data" libexec/kamal-launcher >"$dir/.tmp.$$.bin" 2>/dev/null ||
    [ ! -s "$dir/.tmp.$$.bin" ]; then
    die "$(redact "$url") holds no libexec/kamal-launcher; is it a kamal-launcher platform gem?"
  fi
  chmod 755 "$dir/.tmp.$$.bin"
  mv -f "$dir/.tmp.$$.bin" "$pinned"
  rm -f "$lockf" "$dir/.tmp.$$".*
  trap - EXIT INT TERM
  say "verified and cached kamal-launcher $pin in $dir"
}

if [ -z "$launcher" ]; then
  if [ -z "$pin" ]; then
    say "kamal-launcher is not installed, and ${lock##*/} pins no version of it to fetch."
    echo "  Pin it once in the app: bundle add kamal-launcher --group development --require false" >&2
    echo "  or install it (gem install kamal-launcher, or cargo install kamal-launcher), or set KAMAL_LAUNCHER_BIN." >&2
    echo "  The Bundler binstub is still in bin/kamal.bundler if you kept one." >&2
    exit 127
  fi
  fetch_pinned
  launcher=$pinned
  remember_pin
fi

if [ "${KAMAL_LAUNCHER_CLI:-}" = 1 ]; then
  exec "$launcher" --lockfile "$lock" "$@"
fi
exec "$launcher" --lockfile "$lock" exec -- "$@"
