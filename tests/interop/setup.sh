#!/usr/bin/env bash
# Create/refresh the Python venv for the Espressif interop client and print its python path (the only line on
# stdout; progress goes to stderr):
#
#   PY=$(tests/interop/setup.sh) && "$PY" tests/interop/esp_client.py --help
#
# Environment:
#   WIFIPROV_INTEROP_VENV    venv directory (default: target/interop-venv; a relative path is taken from the
#                            repo root)
#   WIFIPROV_INTEROP_PYTHON  interpreter used to create the venv (default: python3 on PATH; needs >= 3.9)
#
# Idempotent (see tests/pinned-venv.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${WIFIPROV_INTEROP_VENV:-target/interop-venv}"
case "$venv" in
    /*) ;;
    *) venv="$root/$venv" ;;
esac

"$here/../pinned-venv.sh" interop-setup "$here/requirements.txt" "$venv" "${WIFIPROV_INTEROP_PYTHON:-python3}" 3.9 '
from rmaker_tools.rmaker_prov.prov import prov_util
import proto
assert hasattr(proto, "wifi_config_pb2")
import bleak
'
printf '%s\n' "$venv/bin/python"
