#!/usr/bin/env bash
# Wall time of one full security 2 provisioning round by the `wifiprov` binary against the `wifiprovd` binary
# on loopback: connect, proto-ver, SRP handshake, SetConfig, ApplyConfig, status polls until Connected. The
# simulated radio joins instantly and the daemon's connect delay is zero, so the figure is wifiprov's own time.
# Baselines from the same run: the process floor (`wifiprov --version`) and `wifiprov caps` (connect and
# proto-ver, no session). `round` polls as shipped (first status poll after 50 ms); `round-1ms` polls every
# millisecond, which leaves wifiprov's own work. Medians over ROUNDS runs of each; a `reprov` (not timed) reopens the device between
# rounds.
# Usage: crates/wifiprov/benches/cli_round.sh [ROUNDS]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds=${1:-50}
cargo build --release -q -p wifiprov -p wifiprovd
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
cat > "$dir/scenario.toml" <<'TOML'
scan_duration_ms = 0
join_latency_ms = 0
[[ap]]
ssid = "bench"
bssid = "02:00:00:00:00:01"
channel = 6
rssi = -40
auth = "wpa2-psk"
passphrase = "bench-passphrase"
TOML
target/release/wifiprovd --listen 127.0.0.1:0 --state-dir "$dir/state" --scenario "$dir/scenario.toml" \
    --no-auto-stop --connect-delay-ms 0 --sec2-password bench-password > "$dir/out" 2>/dev/null &
pid=$!
addr=
for _ in $(seq 200); do
    addr=$(sed -n 's/^listening on //p' "$dir/out")
    [ -n "$addr" ] && break
    sleep 0.05
done
[ -n "$addr" ] || { echo "cli_round: wifiprovd did not start" >&2; exit 1; }
cli=(target/release/wifiprov --device "$addr" --sec2-password bench-password)

# Microseconds one command takes; a failing command stops the benchmark.
micros() {
    local start
    start=$(date +%s%N)
    "$@" > /dev/null 2>&1 || { echo "cli_round: failed: $*" >&2; exit 1; }
    echo $(( ($(date +%s%N) - start) / 1000 ))
}
for _ in $(seq "$rounds"); do
    micros target/release/wifiprov --version >> "$dir/floor"
    micros "${cli[@]}" caps >> "$dir/caps"
    micros "${cli[@]}" provision --ssid bench --passphrase bench-passphrase >> "$dir/round"
    "${cli[@]}" reprov > /dev/null
    micros "${cli[@]}" provision --ssid bench --passphrase bench-passphrase --poll-interval 1 >> "$dir/round-1ms"
    "${cli[@]}" reprov > /dev/null
done
median() { sort -n "$1" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
floor=$(median "$dir/floor")
for name in floor caps round round-1ms; do
    m=$(median "$dir/$name")
    printf '%-9s median %8.2f ms  %6.1fx the process floor  (%s runs)\n' "$name" "$(echo "$m / 1000" | bc -l)" \
        "$(echo "$m / $floor" | bc -l)" "$rounds"
done
