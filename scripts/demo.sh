#!/usr/bin/env bash
# Demo: builds Switchyard, makes three "containers" (network namespaces with a
# veth each), lets Switchyard switch between them over AF_XDP, and shows real
# kernel traffic crossing it: ping between all pairs, a TCP stream (iperf3), and
# the switch's own counters and MAC table. Everything it creates is removed on
# exit, also on failure or Ctrl-C. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it creates namespaces and attaches XDP programs)" >&2; exit 1; }
./scripts/install-deps.sh
cargo build --release -p switchyard-switch
BIN=target/release/switchyard

tag="syd$$"
work=$(mktemp -d)
pid=""
cleanup() {
  set +e
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  for i in 1 2 3 4; do
    ip netns pids "${tag}h$i" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "${tag}h$i" 2>/dev/null
    ip link del "${tag}v$i" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

for i in 1 2 3; do
  ns="${tag}h$i"; host="${tag}v$i"
  ip netns add "$ns"
  ip link add "$host" type veth peer name eth0 netns "$ns"
  sysctl -qw "net.ipv6.conf.$host.disable_ipv6=1"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "$ns" ip addr add "10.77.0.$i/24" dev eth0
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip link set eth0 up
  ip link set "$host" up
done

cat > "$work/node.toml" <<TOML
[switch]
workers = [$(( $(nproc) > 1 ? 1 : 0 ))]
stats_interval_secs = 5
control_socket = "$work/ctl.sock"

[[network]]
name = "demo"

[[port]]
name = "c1"
driver = "af_xdp"
interface = "${tag}v1"
network = "demo"

[[port]]
name = "c2"
driver = "af_xdp"
interface = "${tag}v2"
network = "demo"

[[port]]
name = "c3"
driver = "af_xdp"
interface = "${tag}v3"
network = "demo"
TOML

echo "== config"; cat "$work/node.toml"
"$BIN" check --config "$work/node.toml"
"$BIN" run --config "$work/node.toml" --stats-file "$work/stats.json" &
pid=$!
for _ in $(seq 100); do [ -s "$work/stats.json" ] && break; sleep 0.1; done
[ -s "$work/stats.json" ] || { echo "switchyard did not come up" >&2; exit 1; }

echo "== ping between all pairs"
for a in 1 2 3; do for b in 1 2 3; do
  [ "$a" = "$b" ] && continue
  ip netns exec "${tag}h$a" ping -c 2 -i 0.2 -W 1 -q "10.77.0.$b" | tail -n 2 | head -n 1 | sed "s/^/c$a -> c$b: /"
done; done

echo "== TCP c1 -> c2 (iperf3, 3 s)"
ip netns exec "${tag}h2" iperf3 -s -1 -D >/dev/null 2>&1
sleep 0.3
ip netns exec "${tag}h1" timeout 15 iperf3 -c 10.77.0.2 -t 3 -f g | grep -E "sender|receiver"

echo "== a fourth container attached live (veth, address and route over netlink)"
ip netns add "${tag}h4"
CTL=("$BIN" ctl --socket "$work/ctl.sock")
"${CTL[@]}" attach --netns "/run/netns/${tag}h4" --network demo --name c4 --ip 10.77.0.4/24
"${CTL[@]}" ports
ip netns exec "${tag}h4" ping -c 2 -i 0.2 -W 1 -q 10.77.0.1 | tail -n 2 | head -n 1 | sed "s/^/c4 -> c1: /"
"${CTL[@]}" detach c4

echo "== switchyard counters and MAC table (stopping)"
kill -TERM "$pid"; wait "$pid"; pid=""
python3 - "$work/stats.json" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
for entry in stats["fdb"]:
    print("fdb", entry["network"], entry["mac"], "->", entry["port"])
PY
echo "demo finished: all namespaces and links are removed on exit"
