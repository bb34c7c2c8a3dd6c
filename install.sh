#!/bin/sh
# Installs kamal-launcher into PREFIX/bin (default prefix: ~/.local). In a checkout of this project it builds the
# checkout with cargo; anywhere else (piped to sh, say), or with --release, it downloads this machine's prebuilt
# binary from the project's GitHub release and verifies it against the release's SHA256SUMS:
#   curl -fsSL https://github.com/kamal-launcher/kamal-launcher/releases/latest/download/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- --prefix /usr/local --release 0.1.0
#   ./install.sh --help               every option
# Downloading needs only sh, curl or wget, sha256sum or shasum, tar and gzip (and uname, mkdir, mv, rm, chmod,
# ln, readlink, which every Unix has). Running it again is harmless; --uninstall undoes it.
set -eu

# shellcheck disable=SC2016 # backquotes and $ are text here
usage() {
  printf '%s\n' \
    'usage: install.sh [--prefix DIR] [--as-kamal] [--release VERSION] [--uninstall] [--demo] [--debug]' \
    '' \
    'Installs kamal-launcher as PREFIX/bin/kamal-launcher. Run from a checkout of kamal-launcher it builds' \
    'that checkout with cargo; run anywhere else (e.g. piped to sh), or with --release, it downloads the' \
    "prebuilt binary for this machine from the GitHub release, verified against the release's SHA256SUMS." \
    '' \
    '  --prefix DIR       install into DIR/bin (default: ~/.local)' \
    '  --as-kamal         also install the name `kamal` (a link; argv[0] = kamal runs kamal)' \
    '  --release VERSION  install release VERSION (e.g. 0.1.0) prebuilt, even from a checkout; without it,' \
    '                     a run outside a checkout installs the latest release' \
    '  --uninstall        remove what an earlier run installed under the prefix' \
    '  --demo             (checkout) then show what it would install for the example app in examples/' \
    '  --debug            (checkout) build without optimisations (faster to build; for tests)' \
    '  -h, --help         this text' \
    '' \
    'Releases are downloaded from $KAMAL_LAUNCHER_RELEASES_URL' \
    '(default https://github.com/kamal-launcher/kamal-launcher/releases): VERSION from' \
    '.../download/vVERSION/, the latest from .../latest/download/. Downloading needs only sh, curl or wget,' \
    'sha256sum or shasum, tar and gzip.'
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

# The `kamal` link is ours only if it points at our binary; a real kamal binstub is never touched.
kamal_is_ours() {
  [ -L "$bin/kamal" ] && [ "$(readlink "$bin/kamal")" = "kamal-launcher" ]
}
# Anything else named kamal is someone else's, a dangling link included (`-e` alone misses those).
kamal_is_foreign() {
  { [ -e "$bin/kamal" ] || [ -L "$bin/kamal" ]; } && ! kamal_is_ours
}

# ---- begin: a verbatim copy of src/platform.sh (this script may be piped, so it cannot source it; tests/release.rs holds the two equal) ----
# shellcheck shell=sh
# kl_platforms: prints the platform gems of kamal-launcher that run on this machine, best first (a glibc
# machine also takes x86_64-linux, the name RubyGems < 3.3.22 gives x86_64-linux-gnu), or fails where none is
# published.
# One definition: the bin/kamal shim embeds it (through init), scripts/ source it, install.sh carries a copy
# that a test holds equal. glibc counts as "gnu" even where a musl loader is also installed, as Ruby sees it.
kl_platforms() {
  kl_cpu=$(uname -m)
  case $(uname -s) in
    Linux)
      case $kl_cpu in
        x86_64|amd64) kl_cpu=x86_64 ;;
        aarch64|arm64) kl_cpu=aarch64 ;;
        *) return 1 ;;
      esac
      kl_libc=gnu
      if ! kl_exists /lib64/ld-linux-*.so.* /lib/ld-linux-*.so.* && kl_exists /lib/ld-musl-*.so.1; then
        kl_libc=musl
      fi
      if [ "$kl_libc" = gnu ]; then
        echo "$kl_cpu-linux-gnu $kl_cpu-linux"
      else
        echo "$kl_cpu-linux-musl"
      fi
      ;;
    Darwin)
      case $kl_cpu in
        x86_64) echo x86_64-darwin ;;
        arm64|aarch64) echo arm64-darwin ;;
        *) return 1 ;;
      esac
      ;;
    *) return 1 ;;
  esac
}

# kl_exists PATH...: whether any of the paths (usually a glob's expansion) exists.
kl_exists() {
  for kl_f in "$@"; do
    [ -e "$kl_f" ] && return 0
  done
  return 1
}
# ---- end: src/platform.sh ----

# fetch URL OUT: downloads URL into OUT; on failure OUT is removed and fetch_reason holds the tool's message.
fetch() {
  fetch_err=$work/fetch.err
  if [ "$fetcher" = curl ]; then
    curl -fsSL --connect-timeout 10 --retry 2 -o "$2" "$1" 2>"$fetch_err" && return 0
  else
    # No -T: Debian's busybox wget before 1.36.1-5 lacks it and segfaults when given it.
    wget -q -O "$2" "$1" 2>"$fetch_err" && return 0
  fi
  fetch_reason=""
  while IFS= read -r line; do
    fetch_reason="$fetch_reason
    $line"
  done <"$fetch_err"
  rm -f "$2"
  return 1
}

# sha256 FILE: its hex SHA-256 (read from stdin, so no file name can change the output's shape).
sha256() {
  if [ "$hasher" = sha256sum ]; then
    sum_line=$(sha256sum <"$1")
  else
    sum_line=$(shasum -a 256 <"$1")
  fi
  echo "${sum_line%% *}"
}

# Downloads this machine's platform gem of the release, verifies it against the release's SHA256SUMS and puts
# its binary, checked to run, at $work/kamal-launcher; sets $installed_version. Nothing outside $work changes.
fetch_release() {
  platforms=$(kl_platforms) || die "no prebuilt kamal-launcher is published for $(uname -sm); build it from source instead: cargo install kamal-launcher"
  releases=${KAMAL_LAUNCHER_RELEASES_URL:-https://github.com/kamal-launcher/kamal-launcher/releases}
  releases=${releases%/}
  want=""
  if [ -n "$release" ]; then
    release=${release#v}
    case $release in
      [0-9]*) ;;
      *) die "--release takes a version such as 0.1.0, not '$release'" ;;
    esac
    case $release in
      *[!0-9A-Za-z.-]*) die "--release takes a version such as 0.1.0, not '$release'" ;;
    esac
    download=$releases/download/v$release/
    # The gem of Cargo's 1.2.0-beta.1 is RubyGems' 1.2.0.beta.1.
    want=$release
    while :; do
      case $want in
        *-*) want=${want%%-*}.${want#*-} ;;
        *) break ;;
      esac
    done
  else
    download=$releases/latest/download/
  fi

  sums_url=${download}SHA256SUMS
  what="a release"
  [ -z "$release" ] || what="release v$release"
  fetch "$sums_url" "$work/SHA256SUMS" || die "could not download $sums_url:$fetch_reason
  (is $what published at $releases?)"

  # The first name kl_platforms prints that the list has a gem for wins: kamal-launcher-VERSION-PLATFORM.gem.
  gem_name=""
  listed=""
  for platform in $platforms; do
    while read -r hex name; do
      name=${name#\*}
      if [ "$platform" = "${platforms%% *}" ]; then
        listed="$listed $name"
      fi
      version=${name#kamal-launcher-}
      [ "$version" != "$name" ] || continue
      case $version in
        *"-$platform.gem") version=${version%"-$platform.gem"} ;;
        *) continue ;;
      esac
      case $version in
        [0-9]*) ;;
        *) continue ;;
      esac
      case $version in
        *[!0-9A-Za-z.]*) continue ;;
      esac
      [ -z "$want" ] || [ "$version" = "$want" ] || continue
      case $hex in
        *[!0-9a-f]*) die "$sums_url lists $name with '$hex', which is no SHA-256" ;;
      esac
      [ "${#hex}" = 64 ] || die "$sums_url lists $name with '$hex', which is no SHA-256"
      gem_name=$name
      expected=$hex
      installed_version=$version
      break
    done <"$work/SHA256SUMS"
    [ -z "$gem_name" ] || break
  done
  [ -n "$gem_name" ] || die "$sums_url lists no kamal-launcher${want:+ $want} gem for this machine ($(uname -sm): $platforms); it lists:${listed:- nothing}
  build it from source instead: cargo install kamal-launcher"

  url=$download$gem_name
  echo "downloading kamal-launcher $installed_version ($platform) from $url"
  fetch "$url" "$work/gem" || die "could not download $url:$fetch_reason"
  actual=$(sha256 "$work/gem")
  if [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $url:
  expected sha256 $expected (from $sums_url)
  actual   sha256 $actual
  nothing was installed; check the release, and any proxy in between"
  fi
  if ! tar -xOf "$work/gem" data.tar.gz >"$work/data.tar.gz" 2>"$work/tar.err" ||
    ! gzip -dc "$work/data.tar.gz" >"$work/data.tar" 2>>"$work/tar.err" ||
    ! tar -xOf "$work/data.tar" libexec/kamal-launcher >"$work/kamal-launcher" 2>>"$work/tar.err" ||
    [ ! -s "$work/kamal-launcher" ]; then
    die "$url holds no libexec/kamal-launcher; is it a kamal-launcher platform gem?"
  fi
  chmod 755 "$work/kamal-launcher"
  # A binary that cannot run here (another CPU, a missing loader) never replaces one that can.
  if ! reported=$("$work/kamal-launcher" --version 2>&1 </dev/null); then
    die "the downloaded kamal-launcher does not run on this machine ($(uname -sm)): $reported
  nothing was installed; build it from source instead: cargo install kamal-launcher"
  fi
}

# Everything runs from here, once the shell has read the whole script: piped from a download cut short, it
# runs nothing.
main() {
  prefix="${HOME:-}/.local"
  demo=0
  as_kamal=0
  uninstall=0
  profile=""
  release=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; prefix="$2"; shift 2 ;;
      --prefix=*) prefix="${1#--prefix=}"; shift ;;
      --release) [ $# -ge 2 ] || { echo "install.sh: --release needs a version, e.g. --release 0.1.0" >&2; exit 2; }; release="$2"; shift 2 ;;
      --release=*) release="${1#--release=}"; shift ;;
      --as-kamal) as_kamal=1; shift ;;
      --demo) demo=1; shift ;;
      --uninstall) uninstall=1; shift ;;
      --debug) profile="--debug"; shift ;;
      -h|--help) usage; exit 0 ;;
      *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
  done

  if [ -z "$prefix" ] || [ "$prefix" = "/.local" ]; then
    echo "install.sh: HOME is not set; pass --prefix DIR" >&2; exit 1
  fi
  bin="$prefix/bin"
  launcher="$bin/kamal-launcher"

  # A checkout is this script's own directory holding the crate. Piped to sh, $0 is the shell, not this script,
  # so a run piped inside some checkout still installs a release.
  here=""
  case $0 in
    */*) script_dir=${0%/*} ;;
    *) script_dir=. ;;
  esac
  if [ -f "$0" ] && [ -f "$script_dir/Cargo.toml" ] && [ -f "$script_dir/src/platform.sh" ]; then
    here=$(CDPATH='' cd -P "$script_dir" && pwd -P)
  fi
  from_release=0
  if [ -n "$release" ] || [ -z "$here" ]; then
    from_release=1
  fi
  if [ "$from_release" = 1 ] && [ "$uninstall" = 0 ]; then
    [ "$demo" = 0 ] || die "--demo runs the example app of a checkout; clone https://github.com/kamal-launcher/kamal-launcher and run ./install.sh --demo there"
    [ -z "$profile" ] || die "--debug chooses how a checkout is built; a release is prebuilt (drop --debug, or run ./install.sh from a checkout without --release)"
  fi

  if [ "$uninstall" = 1 ]; then
    removed=0
    if kamal_is_ours; then rm -f "$bin/kamal"; echo "removed $bin/kamal"; removed=1; fi
    if [ -e "$launcher" ]; then
      # cargo also forgets the install in its bookkeeping under the prefix, which other tools there share.
      if command -v cargo >/dev/null 2>&1 || [ -x "${HOME:-}/.cargo/bin/cargo" ]; then
        PATH="${HOME:-}/.cargo/bin:$PATH" cargo uninstall --quiet --root "$prefix" kamal-launcher 2>/dev/null || true
      fi
      rm -f "$launcher"
      echo "removed $launcher"; removed=1
    fi
    [ "$removed" = 1 ] || echo "nothing to remove under $prefix"
    echo "the cache (~/.cache/kamal-launcher) was left in place; remove it with \`kamal-launcher cache clean\` first if you want it gone"
    exit 0
  fi

  # Refused before anything is built, downloaded or installed, so a refused run changes nothing.
  if [ "$as_kamal" = 1 ] && kamal_is_foreign; then
    die "$bin/kamal exists and is not ours; leaving it alone (remove it, then re-run with --as-kamal)"
  fi

  if [ "$from_release" = 1 ]; then
    # Known to be missing before anything is downloaded.
    if command -v curl >/dev/null 2>&1; then fetcher=curl
    elif command -v wget >/dev/null 2>&1; then fetcher=wget
    else die "downloading a release needs curl or wget; install one (or build from a checkout with cargo)"
    fi
    if command -v sha256sum >/dev/null 2>&1; then hasher=sha256sum
    elif command -v shasum >/dev/null 2>&1; then hasher=shasum
    else die "verifying a release needs sha256sum or shasum; install one (coreutils, or perl's shasum)"
    fi
    for tool in tar gzip; do
      command -v "$tool" >/dev/null 2>&1 || die "unpacking a release needs $tool; install it"
    done
    if [ -d "$bin" ] && [ ! -w "$bin" ]; then
      die "$bin is not writable; choose another --prefix or run with sufficient rights"
    fi

    # Downloads go to a private directory; PREFIX/bin gains the binary only by a rename, once it is verified.
    umask_was=$(umask)
    umask 077
    n=0
    while work=${TMPDIR:-/tmp}/kamal-launcher-install.$$.$n && ! mkdir "$work" 2>/dev/null; do
      n=$((n + 1))
      [ "$n" -lt 100 ] || die "cannot create a temporary directory in ${TMPDIR:-/tmp}; set TMPDIR to a writable one"
    done
    umask "$umask_was"
    staged=$bin/.kamal-launcher.tmp.$$
    trap 'rm -rf "$work"; rm -f "$staged"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    fetch_release
    mkdir -p "$bin" 2>/dev/null || true
    if [ ! -d "$bin" ] || [ ! -w "$bin" ]; then
      die "$bin is not writable; choose another --prefix or run with sufficient rights"
    fi
    mv -f "$work/kamal-launcher" "$staged"
    mv -f "$staged" "$launcher"
    echo "installed $launcher ($reported)"
  else
    if ! command -v cargo >/dev/null 2>&1; then
      if [ -x "${HOME:-}/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
      else
        echo "install.sh: cargo not found. Install Rust with rustup: https://rustup.rs (curl https://sh.rustup.rs -sSf | sh)," >&2
        echo "  or install the prebuilt release instead: ./install.sh --release VERSION" >&2
        exit 1
      fi
    fi

    mkdir -p "$bin" 2>/dev/null || true
    if [ ! -d "$bin" ] || [ ! -w "$bin" ]; then
      die "$bin is not writable; choose another --prefix or run with sufficient rights"
    fi

    # shellcheck disable=SC2086 # $profile is empty or one flag
    cargo install --quiet --path "$here" --locked --root "$prefix" --force $profile
    echo "installed $launcher ($("$launcher" --version))"
  fi

  if [ "$as_kamal" = 1 ]; then
    if kamal_is_foreign; then
      die "$bin/kamal appeared while installing and is not ours; leaving it alone"
    fi
    ln -sfn kamal-launcher "$bin/kamal"
    echo "installed $bin/kamal -> kamal-launcher"
  fi

  case ":$PATH:" in
    *":$bin:"*) ;;
    *) echo "note: $bin is not on PATH; add it, e.g. echo 'export PATH=\"$bin:\$PATH\"' >> ~/.profile" ;;
  esac

  if [ "$demo" = 1 ]; then
    echo
    echo "What kamal-launcher would install for examples/demo-app (--offline: no network needed):"
    cd "$here/examples/demo-app"
    "$launcher" plan --offline
  fi
}

main "$@"
