#!/usr/bin/env bash
# System packages Switchyard needs to build (libxdp/libbpf are built from source
# by libxdp-sys and need clang, llvm, libelf, zlib) and to run its end-to-end
# tests and demo (iproute2, ping, ethtool, iperf3, setpriv from util-linux), and
# podman 4 with its CNI backend for tests/tests/cni_podman.rs (runc: crun cannot run
# on a cgroup v1 + v2 hybrid; busybox-static is the containers' root file system,
# as no image registry is needed; iptables and catatonit are podman's helpers), and
# the kernel baseline of the NAT benchmark (nftables: masquerade and DNAT rules).
set -euo pipefail
packages=(clang llvm m4 libelf-dev zlib1g-dev pkg-config make
          iproute2 iputils-ping ethtool iperf3 util-linux procps
          podman runc containernetworking-plugins busybox-static iptables catatonit
          nftables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No recommends: podman's would pull in crun, slirp4netns, fuse-overlayfs, ...
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
