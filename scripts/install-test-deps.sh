#!/usr/bin/env bash
# Installs what crust's tests and benchmarks need on Debian 12 (idempotent, quiet).
# Only touches apt when something is missing. Needs root (or sudo) when it does.
set -euo pipefail

pkgs=(runc runsc skopeo umoci docker-registry busybox-static protobuf-compiler iptables
      containernetworking-plugins libseccomp-dev pkg-config zstd jq
      rpm dpkg-dev python3-websockets golang-go golang-github-docker-spdystream-dev)

missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
for c in runc skopeo umoci docker-registry busybox protoc iptables zstd jq; do
    if ! command -v "$c" >/dev/null 2>&1 && [ ! -x "/usr/bin/$c" ] && [ ! -x "/usr/sbin/$c" ] && [ ! -x "/bin/$c" ]; then
        echo "install-test-deps: $c not found" >&2
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "install-test-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
