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
