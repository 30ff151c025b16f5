#!/usr/bin/env bash
# Build (once) the kernel lab's VM image: Debian 12 with the full distribution kernel (native ESP,
# XFRM interfaces, VTI), systemd, sshd, and the product packages already installed (apt under TCG
# takes minutes; the roles' apt tasks then find them present).
# Output, in lab/cache/vm/<key>/: base.qcow2, vmlinuz, initrd.img; prints that directory.
# The key hashes this script and the lab's SSH public key (baked into the image), so the image is
# rebuilt only when its recipe changes. No loop devices: the ext4 image is filled with mkfs.ext4 -d.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${IKEMESH_VM_CACHE:-$(dirname "$here")/cache/vm}"
mkdir -p "$cache"
key="$cache/id_ed25519"
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C ikemesh-vm-lab -f "$key"
tag="$(cat "$0" "$key.pub" | sha256sum | cut -c1-12)"
out="$cache/$tag"
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi
mirror="${IKEMESH_LAB_MIRROR:-http://deb.debian.org/debian}"
base_packages="systemd,systemd-sysv,udev,dbus,kmod,initramfs-tools,openssh-server,python3,python3-apt,iproute2,iputils-ping,procps,ca-certificates,less,nftables,tcpdump,iperf3"
product_packages="charon-systemd strongswan-swanctl libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins python3-cryptography python3-prometheus-client frr"
work="$(mktemp -d /var/tmp/ikemesh-vm.XXXXXX)"
root="$work/root"
cleanup() {
  for m in dev/pts dev sys proc; do umount "$root/$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
start=$SECONDS
echo "vm image: building $out (debootstrap + packages, a few minutes)" >&2
debootstrap --variant=minbase --include="$base_packages" bookworm "$root" "$mirror" >&2
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
# Small initrd (6.5 MB instead of 36 MB): only what mounts a virtio ext4 root. Written before the
# kernel is installed so the initrd is generated once.
mkdir -p "$root/etc/initramfs-tools"
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk virtio_net ext4 crc32c_generic >"$root/etc/initramfs-tools/modules"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
# No daemon may start inside the build chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
chroot "$root" env DEBIAN_FRONTEND=noninteractive bash -c \
  "apt-get update -qq && apt-get install -y -qq --no-install-recommends linux-image-amd64 $product_packages" >&2
rm -f "$root/usr/sbin/policy-rc.d"
for m in dev/pts dev sys proc; do umount "$root/$m"; done

# Identity comes from the kernel command line; sshd takes the lab key only.
: >"$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
install -d -m 700 "$root/root/.ssh"
install -m 600 "$key.pub" "$root/root/.ssh/authorized_keys"
cat >"$root/etc/ssh/sshd_config.d/ikemesh-lab.conf" <<'SSHD'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
SSHD
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
printf '/dev/vda / ext4 rw,noatime 0 1\n' >"$root/etc/fstab"

# The lab network, from /proc/cmdline: ikemesh.mgmt=MAC (QEMU user networking, static: no DHCP wait)
# and ikemesh.addr=MAC,ADDRESS/PREFIX per lab network (NICs matched by MAC, their order is not fixed).
cat >"$root/usr/local/sbin/ikemesh-lab-net" <<'NET'
#!/bin/sh
set -eu
dev_of() {
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address")" = "$1" ] && basename "$d" && return 0
  done
  echo "ikemesh-lab-net: no NIC with MAC $1" >&2
  return 1
}
ip link set lo up
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    ikemesh.mgmt=*)
      dev=$(dev_of "${arg#ikemesh.mgmt=}")
      ip link set "$dev" up
      ip address replace 10.0.2.15/24 dev "$dev"
      ip route replace default via 10.0.2.2 dev "$dev"
      ;;
    ikemesh.addr=*)
      spec=${arg#ikemesh.addr=}
      dev=$(dev_of "${spec%%,*}")
      ip link set "$dev" up
      ip address replace "${spec#*,}" dev "$dev"
      ;;
  esac
done
NET
chmod 755 "$root/usr/local/sbin/ikemesh-lab-net"
cat >"$root/etc/systemd/system/ikemesh-lab-net.service" <<'UNIT'
[Unit]
Description=ikemesh lab: addresses from the kernel command line
DefaultDependencies=no
After=systemd-udev-trigger.service
Wants=network.target
Before=network.target ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/ikemesh-lab-net

[Install]
WantedBy=multi-user.target
UNIT
# Fresh host keys per VM before sshd starts (the image carries none); ed25519 only, because RSA
# generation alone took 87 s of a TCG boot.
cat >"$root/etc/systemd/system/ikemesh-lab-hostkeys.service" <<'UNIT'
[Unit]
Description=ikemesh lab: SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable ikemesh-lab-net.service ikemesh-lab-hostkeys.service ssh.service >/dev/null 2>&1
# Boot is CPU-bound under TCG: nothing that a serial-console lab VM does not need. FRR is installed
# but left stopped (it is ordered before network.target, so sshd waited 34 s for it); the product
# starts what it uses. strongSwan stays as Debian leaves it.
chroot "$root" systemctl disable frr.service >/dev/null 2>&1
chroot "$root" systemctl mask getty@tty1.service systemd-networkd-wait-online.service e2scrub_reap.service \
  apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer dpkg-db-backup.timer \
  >/dev/null 2>&1 || true

cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
# Dropping package downloads keeps the image small; the apt lists stay (the roles' apt cache_valid_time).
rm -rf "$root"/var/cache/apt/archives/*.deb
truncate -s 3G "$work/root.raw"
mkfs.ext4 -q -F -L ikemesh-root -d "$root" "$work/root.raw"
mkdir -p "$out"
qemu-img convert -O qcow2 "$work/root.raw" "$out/base.qcow2"
mv "$work/vmlinuz" "$work/initrd.img" "$out/"
touch "$out/.complete"
echo "vm image: built in $((SECONDS - start)) s" >&2
echo "$out"
