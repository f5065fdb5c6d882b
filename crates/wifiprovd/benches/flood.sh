#!/usr/bin/env bash
# Where the daemon's time goes under a flood of complete security 1 handshakes: runs the flood benchmark's
# security 1 phases (daemon and load generator sharing both cores) and samples the daemon with perf while the
# new-connection flood runs, then prints its time by symbol, by shared object, and by system call.
# Needs perf (linux-perf); software clock sampling is enough, so it works in VMs without hardware counters.
# Usage: crates/wifiprovd/benches/flood.sh [seconds to sample, default 15]
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs=${1:-15}
command -v perf > /dev/null || { echo "flood.sh: perf is needed (apt-get install linux-perf)" >&2; exit 2; }
cargo bench -p wifiprovd --bench flood --no-run -q 2> /dev/null
bench=$(ls -t target/release/deps/flood-* | grep -v '\.d$' | sed -n 1p)
out=$(mktemp -d)
runner=""
trap '[ -z "$runner" ] || kill "$runner" 2>/dev/null || true; rm -rf "$out"' EXIT
"$bench" --bench --scheme 1 --layout shared --long $((secs + 10)) --secs 2 --rounds 3 > "$out/bench.txt" &
runner=$!
daemon=""
for _ in $(seq 200); do
    daemon=$(pgrep -P "$runner" -f 'wifiprovd --security 1' || true)
    [ -n "$daemon" ] && break
    sleep 0.05
done
[ -n "$daemon" ] || { echo "flood.sh: the daemon did not start" >&2; exit 1; }
sleep 3   # the unloaded rounds, then the flood starts
perf record -q -e cpu-clock -F 1999 -g -p "$daemon" -o "$out/perf.data" -- sleep "$secs" 2> /dev/null
wait "$runner"
cat "$out/bench.txt"
echo
echo "== daemon time by shared object"
perf report -i "$out/perf.data" --stdio --no-children --sort dso -g none 2> /dev/null | grep -v '^#' | grep -v '^$' | sed -n 1,6p
echo "== daemon time by symbol (self)"
perf report -i "$out/perf.data" --stdio --no-children --sort sym -g none 2> /dev/null | grep -v '^#' | grep -v '^$' | sed -n 1,30p
echo "== daemon kernel time by system call (share of all samples)"
perf script -i "$out/perf.data" -F ip,sym 2> /dev/null | awk '
    /^$/ { if (n) { total++; if (kernel) count[sys ? sys : "(no system call: interrupts, scheduler)"]++ } n = 0; kernel = 0; sys = ""; next }
    { if (n == 0 && $1 ~ /^ffff/) kernel = 1; n++; if (sys == "" && $2 ~ /^__x64_sys_/) sys = $2 }
    END { for (s in count) printf "%6.2f%%  %s\n", 100 * count[s] / total, s }' | sort -rn | sed -n 1,15p
