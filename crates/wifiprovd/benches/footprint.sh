#!/usr/bin/env bash
# Footprint of the daemon: release binary size (as built and stripped) and idle resident memory after start,
# next to the same figures for a baseline in the same run: `sleep`, the smallest long-running process.
# Usage: crates/wifiprovd/benches/footprint.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -p wifiprovd -q
bin=target/release/wifiprovd
stripped=$(mktemp)
trap 'rm -f "$stripped"; kill "$pid" 2>/dev/null || true; kill "$base" 2>/dev/null || true' EXIT
cp "$bin" "$stripped" && strip "$stripped"
state=$(mktemp -d)
"$bin" --listen 127.0.0.1:0 --state-dir "$state" > "$state/out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do grep -q '^listening on' "$state/out" 2>/dev/null && break; sleep 0.05; done
sleep 1   # let start-up allocations settle: this measures the idle daemon
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
sleep 60 & base=$!
sleep 0.2
base_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$base/status")
printf 'binary: %s bytes as built, %s bytes stripped (target <= 6 MiB = 6291456)\n' "$(stat -c %s "$bin")" "$(stat -c %s "$stripped")"
printf 'idle RSS: %s KiB (target <= 8192 KiB); baseline sleep: %s KiB; ratio %.1fx\n' "$rss_kib" "$base_kib" "$(echo "$rss_kib / $base_kib" | bc -l)"
