# Shared helpers for scripts/*.sh (sourced, not run).
MCSERVE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MCSERVE_BUILD="${MCSERVE_BUILD:-$MCSERVE_ROOT/build}"

log() { printf '\033[1m[mcserve]\033[0m %s\n' "$*" >&2; }
die() { printf '[mcserve] error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (install sudo or run as root)"
  fi
}

# Package names from a list file, comments and blanks dropped.
package_list() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$1"; }
