#!/usr/bin/env bash
# Build (once) the container lab's node image from debootstrap: Debian 12, systemd as PID 1, python3.
# The image tag is a hash of this script, so the image is rebuilt only when its recipe changes.
# Product packages are only downloaded into the apt cache, so the install role really installs them
# (fast, from the cache) instead of finding them pre-installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="$here/containers.conf"
tag="$(sha256sum "$0" | cut -c1-12)"
image="localhost/ikemesh-lab-node:$tag"
# Scenarios that run in parallel build the image once: the second waits here, then finds it.
exec 9>/var/lock/ikemesh-lab-image.lock
flock 9
if podman image exists "$image"; then
  echo "$image"
  exit 0
fi
mirror="${IKEMESH_LAB_MIRROR:-http://deb.debian.org/debian}"
base_packages="systemd,systemd-sysv,dbus,python3,python3-apt,iproute2,iputils-ping,procps,ca-certificates,less,tcpdump,nftables"
product_packages="charon-systemd strongswan-swanctl libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins python3-cryptography frr"
work="$(mktemp -d /var/tmp/ikemesh-rootfs.XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "building $image (debootstrap, about a minute)" >&2
debootstrap --variant=minbase --include="$base_packages" bookworm "$work/root" "$mirror" >&2
cat >"$work/root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
# Units that make no sense in a container, and a clean machine-id per container.
chroot "$work/root" systemctl mask systemd-resolved.service getty@tty1.service \
  systemd-udevd.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true
: >"$work/root/etc/machine-id"
chroot "$work/root" bash -c "apt-get update -qq && apt-get install -y -qq --download-only $product_packages" >&2
tar -C "$work/root" -c . | podman import --change 'CMD ["/lib/systemd/systemd"]' - "$image" >&2
echo "$image"
