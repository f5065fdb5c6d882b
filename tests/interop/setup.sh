#!/usr/bin/env bash
# Create/refresh the Python venv for the Espressif interop client and print
# its python path (the only line on stdout; progress goes to stderr):
#
#   PY=$(tests/interop/setup.sh) && "$PY" tests/interop/esp_client.py --help
#
# Environment:
#   WIFIPROV_INTEROP_VENV    venv directory (default: target/interop-venv;
#                            a relative path is taken from the repo root)
#   WIFIPROV_INTEROP_PYTHON  interpreter used to create the venv
#                            (default: python3 on PATH; needs >= 3.9)
#
# Idempotent: when the venv already has exactly the versions pinned in
# requirements.txt and the client imports, nothing is installed.  pip's
# normal download cache (~/.cache/pip or PIP_CACHE_DIR) is used.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
req="$here/requirements.txt"

venv="${WIFIPROV_INTEROP_VENV:-target/interop-venv}"
case "$venv" in
    /*) ;;
    *) venv="$root/$venv" ;;
esac
if command -v realpath >/dev/null 2>&1; then
    venv="$(realpath -m "$venv" 2>/dev/null || printf '%s' "$venv")"
fi
base_python="${WIFIPROV_INTEROP_PYTHON:-python3}"
py="$venv/bin/python"

log() { printf 'interop-setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Exit 0 if $py has every pinned version and the client modules import.
check_installed() {
    [ -x "$py" ] || return 1
    "$py" - "$req" <<'PYEOF' >/dev/null 2>&1
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
from rmaker_tools.rmaker_prov.prov import prov_util  # noqa: F401
import proto
assert hasattr(proto, "wifi_config_pb2")
PYEOF
}

if check_installed; then
    log "up to date: $venv"
    printf '%s\n' "$py"
    exit 0
fi

command -v "$base_python" >/dev/null 2>&1 \
    || die "'$base_python' not found; install python3 (>= 3.9) or set WIFIPROV_INTEROP_PYTHON"
"$base_python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || die "$("$base_python" -V 2>&1) is too old; esp-rainmaker-cli needs Python >= 3.9"

# (Re)create the venv if it is missing or its interpreter no longer runs
# (e.g. the base python was removed or upgraded).
if ! { [ -x "$py" ] && "$py" -m pip --version >/dev/null 2>&1; }; then
    if [ -e "$venv" ]; then
        log "removing unusable venv $venv"
        rm -rf "$venv"
    fi
    log "creating venv $venv with $("$base_python" -V 2>&1) ($(command -v "$base_python"))"
    mkdir -p "$(dirname "$venv")"
    if ! venv_err="$("$base_python" -m venv "$venv" 2>&1)"; then
        rm -rf "$venv"
        printf '%s\n' "$venv_err" >&2
        log "error: '$base_python -m venv' failed (the venv/ensurepip module is missing)."
        log "       On Debian/Ubuntu: apt-get install python3-venv   (or python3.11-venv)"
        log "       or point WIFIPROV_INTEROP_PYTHON at another interpreter (e.g. a pyenv python)."
        exit 1
    fi
fi

log "installing pinned packages from $req"
start=$SECONDS
"$py" -m pip install \
    --disable-pip-version-check --no-input --quiet \
    --no-deps --only-binary=:all: \
    -r "$req" >&2 \
    || die "pip install failed (is the package registry reachable?)"

check_installed || die "installed packages do not import; see: $py -c 'from rmaker_tools.rmaker_prov.prov import prov_util'"
log "ready in $((SECONDS - start))s: $venv"
printf '%s\n' "$py"
