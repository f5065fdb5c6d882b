#!/usr/bin/env bash
# Create/refresh the Python venv with BlueZoo (a user-space mock of BlueZ) for the BLE end-to-end tests, and
# print the path of its `bluezoo` executable (the only line on stdout; progress goes to stderr):
#
#   BLUEZOO=$(tests/ble/setup.sh) && "$BLUEZOO" --help
#
# The tests find it at the same place (crates/testkit, module bluezoo).
#
# Environment:
#   WIFIPROV_BLUEZOO_VENV    venv directory (default: target/bluezoo-venv; a relative path is taken from the
#                            repo root)
#   WIFIPROV_BLUEZOO_PYTHON  interpreter used to create the venv (default: python3 on PATH; needs >= 3.11)
#
# Idempotent (see tests/pinned-venv.sh). sdbus ships manylinux wheels with libsystemd's sd-bus inside, so
# nothing is compiled.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${WIFIPROV_BLUEZOO_VENV:-target/bluezoo-venv}"
case "$venv" in
    /*) ;;
    *) venv="$root/$venv" ;;
esac

"$here/../pinned-venv.sh" bluezoo-setup "$here/requirements.txt" "$venv" "${WIFIPROV_BLUEZOO_PYTHON:-python3}" 3.11 '
import os, sys
from bluezoo import bluezoo
assert os.access(os.path.join(sys.prefix, "bin", "bluezoo"), os.X_OK)
'
printf '%s\n' "$venv/bin/bluezoo"
