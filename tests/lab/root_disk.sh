# L2 root disks (POSIX sh; sourced by tools/demo on the host and, as /lab/root_disk.sh, by the
# lab's virtio-blk scenarios in L1).
#
# make_root_disk IMAGE SIZE DISK_INIT MKE2FS [EXTRA...]: a sparse ext4 image of SIZE (truncate's
# units) holding static busybox, DISK_INIT as /init (tests/lab/l2/disk_init.sh) and each EXTRA,
# a file or directory copied to the same path (e.g. a program and its libraries). Made with
# e2fsprogs' mke2fs -d (busybox's makes ext2 only and has no -d). An IMAGE that exists is kept:
# it holds what the guest wrote.
make_root_disk() {
  [ -f "$1" ] && return 0
  image=$1 size=$2 init=$3 mke2fs=$4
  shift 4
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/sbin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/data"
  cp /bin/busybox "$root/bin/busybox"
  for a in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox "$root/bin/$a"; done
  cp "$init" "$root/init"
  chmod +x "$root/init"
  for extra in "$@"; do
    mkdir -p "$root$(dirname "$extra")"
    cp -a "$extra" "$root$extra"
  done
  truncate -s "$size" "$image.tmp"
  "$mke2fs" -q -t ext4 -d "$root" -F "$image.tmp" && mv "$image.tmp" "$image"
  rm -rf "$root"
  [ -f "$image" ]
}

# boot_from_disk VMM KERNEL INITRD IMAGE CPUS MEMORY: boots until the guest powers off; a guest
# reboot boots it again from the same image, as a machine would.
boot_from_disk() {
  err=$(mktemp)
  queues=$5
  [ "$queues" -gt 16 ] && queues=16  # One per vCPU, as Linux's driver uses them; vmm's maximum.
  while true; do
    "$1" --kernel="$2" --initrd="$3" --cpus="$5" --memory="$6" --boot_timer \
      --cmdline="console=ttyS0 reboot=k panic=1 quiet root=/dev/vda blkmode=shell" \
      --disk "path=$4,queues=$queues" 2>"$err" && rc=0 || rc=$?  # (also under set -e)
    cat "$err" >&2  # vmm's own lines (POSIX sh here: L1's busybox has no process substitution)
    grep -q "guest reset" "$err" || break
    echo "vmmkit demo: the guest rebooted; booting it again from $4"
  done
  rm -f "$err"
  return $rc
}
