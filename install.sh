#!/bin/sh
# Builds kamal-launcher from this checkout and installs it (default prefix: ~/.local).
#   ./install.sh                      install to ~/.local/bin
#   ./install.sh --prefix /usr/local  install elsewhere
#   ./install.sh --demo               then show what it would install for the example app in examples/
set -eu

prefix="${HOME:-}/.local"
demo=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --demo) demo=1; shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$prefix" ] || [ "$prefix" = "/.local" ]; then
  echo "install.sh: HOME is not set; pass --prefix DIR" >&2; exit 1
fi

here=$(cd "$(dirname "$0")" && pwd)
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "${HOME:-}/.cargo/bin/cargo" ] && PATH="$HOME/.cargo/bin:$PATH" || {
    echo "install.sh: cargo not found. Install Rust with rustup: https://rustup.rs (curl https://sh.rustup.rs -sSf | sh)" >&2
    exit 1
  }
fi

mkdir -p "$prefix/bin" 2>/dev/null || true
if [ ! -w "$prefix/bin" ]; then
  echo "install.sh: $prefix/bin is not writable; choose another --prefix or run with sufficient rights" >&2
  exit 1
fi

cargo install --quiet --path "$here" --locked --root "$prefix" --force
echo "installed $prefix/bin/kamal-launcher ($("$prefix/bin/kamal-launcher" --version))"

case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on PATH; add it, e.g. echo 'export PATH=\"$prefix/bin:\$PATH\"' >> ~/.profile" ;;
esac

if [ "$demo" = 1 ]; then
  echo
  echo "What kamal-launcher would install for examples/demo-app (--offline: no network needed):"
  cd "$here/examples/demo-app"
  "$prefix/bin/kamal-launcher" plan --offline
fi
