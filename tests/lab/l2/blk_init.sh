#!/bin/busybox sh
# /init of the initramfs that boots an L2 guest from a virtio-blk disk: virtio_blk and
# virtio_pci are modules in the lab's kernel, so this loads them, mounts root= (ext4) and
# switch_roots to the disk's own /init (l2/disk_init.sh), which does the test.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
  insmod /modules/$m.ko || echo "L2: FAIL insmod $m"
done
root=$(sed -n 's/.*root=\([^ ]*\).*/\1/p' /proc/cmdline)
for i in $(seq 1 100); do [ -b "$root" ] && break; usleep 100000; done
mkdir -p /newroot
if mount -t ext4 "$root" /newroot; then
  for d in dev proc sys; do mount --move /$d /newroot/$d; done
  exec switch_root /newroot /init
fi
echo "L2: FAIL cannot mount $root"
ls /sys/bus/pci/devices /sys/block | sed 's/^/L2: /'
reboot -f
