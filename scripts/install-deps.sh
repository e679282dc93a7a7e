#!/usr/bin/env bash
# System packages Switchyard needs to build (libxdp/libbpf are built from source
# by libxdp-sys and need clang, llvm, libelf, zlib) and to run its end-to-end
# tests and demo (iproute2, ping, ethtool, iperf3, setpriv from util-linux), and
# the kernel baseline of the NAT benchmark (nftables: masquerade and DNAT rules).
set -euo pipefail
packages=(clang llvm m4 libelf-dev zlib1g-dev pkg-config make
          iproute2 iputils-ping ethtool iperf3 util-linux procps nftables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
