#!/bin/sh
# Builds kamal-launcher from this checkout and installs it (default prefix: ~/.local).
#   ./install.sh                      install to ~/.local/bin
#   ./install.sh --prefix /usr/local  install elsewhere
#   ./install.sh --as-kamal           also install the name `kamal` (a link; argv[0] = kamal runs kamal)
#   ./install.sh --demo               then show what it would install for the example app in examples/
#   ./install.sh --uninstall          remove what an earlier run installed under the prefix
#   ./install.sh --debug              build without optimisations (faster to build; for tests)
set -eu

prefix="${HOME:-}/.local"
demo=0
as_kamal=0
uninstall=0
profile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --as-kamal) as_kamal=1; shift ;;
    --demo) demo=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    --debug) profile="--debug"; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$prefix" ] || [ "$prefix" = "/.local" ]; then
  echo "install.sh: HOME is not set; pass --prefix DIR" >&2; exit 1
fi
bin="$prefix/bin"
launcher="$bin/kamal-launcher"

# The `kamal` link is ours only if it points at our binary; a real kamal binstub is never touched.
kamal_is_ours() {
  [ -L "$bin/kamal" ] && [ "$(readlink "$bin/kamal")" = "kamal-launcher" ]
}
# Anything else named kamal is someone else's, a dangling link included (`-e` alone misses those).
kamal_is_foreign() {
  { [ -e "$bin/kamal" ] || [ -L "$bin/kamal" ]; } && ! kamal_is_ours
}

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

here=$(CDPATH= cd -P "$(dirname "$0")" && pwd -P)
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "${HOME:-}/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "install.sh: cargo not found. Install Rust with rustup: https://rustup.rs (curl https://sh.rustup.rs -sSf | sh)" >&2
    exit 1
  fi
fi

# Refused before anything is built or installed, so a refused run changes nothing.
if [ "$as_kamal" = 1 ] && kamal_is_foreign; then
  echo "install.sh: $bin/kamal exists and is not ours; leaving it alone (remove it, then re-run with --as-kamal)" >&2
  exit 1
fi

mkdir -p "$bin" 2>/dev/null || true
if [ ! -d "$bin" ] || [ ! -w "$bin" ]; then
  echo "install.sh: $bin is not writable; choose another --prefix or run with sufficient rights" >&2
  exit 1
fi

# shellcheck disable=SC2086 # $profile is empty or one flag
cargo install --quiet --path "$here" --locked --root "$prefix" --force $profile
echo "installed $launcher ($("$launcher" --version))"

if [ "$as_kamal" = 1 ]; then
  if kamal_is_foreign; then
    echo "install.sh: $bin/kamal appeared while installing and is not ours; leaving it alone" >&2
    exit 1
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
