#!/usr/bin/env bash
# Create or refresh a Python virtualenv holding exactly the pinned wheels of a requirements file. Shared by the
# test environments (tests/interop/setup.sh, tests/ble/setup.sh); each wrapper names its venv and what must
# import, and prints what its tests run.
#
#   tests/pinned-venv.sh LABEL REQUIREMENTS VENV_DIR BASE_PYTHON MIN_PYTHON IMPORT_CHECK
#
#   LABEL         prefix of the progress lines on stderr
#   REQUIREMENTS  a file of `name==version` lines (comments allowed), installed with --no-deps and wheels only
#   VENV_DIR      the venv (absolute path)
#   BASE_PYTHON   the interpreter that creates it (python3)
#   MIN_PYTHON    oldest acceptable version, as `3.11`
#   IMPORT_CHECK  Python code that must run without error in the venv (the imports the tests rely on)
#
# Idempotent: a venv that already has every pinned version and passes the check is left alone (about 0.2 s).
# pip's normal download cache (~/.cache/pip or PIP_CACHE_DIR) is used. Nothing goes to stdout.
set -euo pipefail

[ $# -eq 6 ] || { echo "usage: $0 LABEL REQUIREMENTS VENV_DIR BASE_PYTHON MIN_PYTHON IMPORT_CHECK" >&2; exit 2; }
label=$1 req=$2 venv=$3 base_python=$4 min_python=$5 import_check=$6
py="$venv/bin/python"

log() { printf '%s: %s\n' "$label" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Exit 0 if $py has every pinned version and the check passes.
check_installed() {
    [ -x "$py" ] || return 1
    "$py" - "$req" "$import_check" <<'PYEOF' >/dev/null 2>&1
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
exec(sys.argv[2])
PYEOF
}

if check_installed; then
    log "up to date: $venv"
    exit 0
fi

command -v "$base_python" >/dev/null 2>&1 || die "'$base_python' not found; install python3 (>= $min_python)"
"$base_python" - "$min_python" <<'PYEOF' || die "$("$base_python" -V 2>&1) is too old; needs Python >= $min_python"
import sys
sys.exit(sys.version_info[:2] < tuple(int(p) for p in sys.argv[1].split(".")))
PYEOF

# (Re)create the venv if it is missing or its interpreter no longer runs (the base python was removed or
# upgraded).
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
        log "       On Debian/Ubuntu: apt-get install python3-venv"
        exit 1
    fi
fi

log "installing pinned packages from $req"
start=$SECONDS
# Wheels only and no dependency resolution: the requirements list every package, so nothing is compiled and
# nothing unpinned arrives.
"$py" -m pip install \
    --disable-pip-version-check --no-input --quiet \
    --no-deps --only-binary=:all: \
    -r "$req" >&2 \
    || die "pip install failed (is the package registry reachable?)"

check_installed || die "installed packages do not pass the import check: $import_check"
log "ready in $((SECONDS - start))s: $venv"
