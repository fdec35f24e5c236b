#!/bin/sh
# /init on the L2 root disk (an ext4 image L1 makes with mke2fs -d; l2/blk_init.sh mounts it and
# switches to it). blkmode= on the kernel command line says what this boot does; results go to
# the console as "L2: PASS ..." / "L2: FAIL ...", which the scenario (scenarios/virtio_blk.sh)
# checks. /proc, /sys and /dev were moved here by the initramfs.
export PATH=/bin:/sbin:/lab/bin
mode=$(sed -n 's/.*blkmode=\([^ ]*\).*/\1/p' /proc/cmdline)
check() {  # check DESCRIPTION COMMAND...
  desc=$1; shift
  if "$@"; then echo "L2: PASS $desc"; else echo "L2: FAIL $desc"; fi
}
echo "L2: booted from $(awk '$2 == "/" { print $1 }' /proc/mounts) ($mode)"
check "root is on virtio-blk" sh -c "awk '\$2 == \"/\" { print \$1 }' /proc/mounts | grep -qx /dev/vda"
echo "L2: vda queues $(ls /sys/block/vda/mq | wc -l), serial $(cat /sys/block/vda/serial 2>/dev/null)"
# The blob: 8 MiB of random data and its checksum, written through the page cache and synced
# (the guest's FLUSH), or read back from the disk after a reboot.
write_blob() {
  dd if=/dev/urandom of=/data/blob bs=1M count=8 2>/dev/null
  md5sum /data/blob > /data/blob.md5
  sync
}
blob_intact() { md5sum -c -s /data/blob.md5; }
case "$mode" in
  shell)
    # tools/demo: a shell on the disk. What is written survives 'reboot -f' (vmm boots again from
    # the same image); 'poweroff -f' ends the demo.
    mount -t tmpfs tmpfs /tmp
    echo "vmmkit demo: / is ext4 on /dev/vda, a raw image vmm serves as virtio-blk."
    echo "  Files you write (try: date > /data/hello; sync) are still there after 'reboot -f';"
    echo "  'poweroff -f' ends the demo. In /data now: $(ls /data | tr '\n' ' ')"
    echo "L2: shell ready"
    exec setsid cttyhack sh ;;
  write)
    mkdir -p /data
    write_blob
    echo "written before reboot" > /data/hello
    sync
    echo "L2: wrote"
    reboot -f ;;
  read)
    check "8 MiB written before the reboot read back intact" blob_intact
    check "the small file too" grep -qx "written before reboot" /data/hello
    # Discard and write-zeroes reach the device (fstrim: discard of the free blocks).
    check "fstrim discards the free blocks" fstrim /
    poweroff -f ;;
  durable)
    echo "acknowledged by flush" > /data/durable
    sync  # fsync of the data and the journal: virtio-blk FLUSH, fdatasync on the host.
    echo "L2: synced"
    while true; do sleep 60; done ;;
  durable-check)
    check "the file flushed before vmm was killed is there" grep -qx "acknowledged by flush" /data/durable
    poweroff -f ;;
  iommu)
    dmesg | grep -o "DMAR: Intel(R) Virtualization Technology for Directed I/O" | sed 's/^/L2: /'
    dmesg | grep -o "DMAR-IR: Enabled IRQ remapping in [a-z0-9]* mode" | sed 's/^/L2: /'
    vdev=$(readlink -f /sys/block/vda/device/..)
    check "the disk's PCI function is in an IOMMU group" test -e "$vdev/iommu_group"
    echo "L2: its domain: $(cat $vdev/iommu_group/type 2>/dev/null)"
    check "  ... translated (a DMA domain, not identity)" grep -q "^DMA" "$vdev/iommu_group/type"
    # Feature bit 33, ACCESS_PLATFORM: the driver maps its buffers through the DMA API.
    check "the driver accepted ACCESS_PLATFORM" \
      sh -c "cut -c34 /sys/block/vda/device/features | grep -qx 1"
    write_blob
    echo 3 > /proc/sys/vm/drop_caches
    check "8 MiB through the vIOMMU: written, caches dropped, read back intact" blob_intact
    echo "L2: iommu checked"
    sleep 15  # The scenario asks vmm meanwhile what the unit did for the disk.
    poweroff -f ;;
  hotplug)
    echo "L2: ready"
    n=0
    while true; do
      for i in $(seq 1 600); do [ -b /dev/vdb ] && break; usleep 100000; done
      [ -b /dev/vdb ] || { echo "L2: FAIL no /dev/vdb"; break; }
      n=$((n + 1))
      mkdir -p /mnt
      if mount -t ext4 /dev/vdb /mnt; then
        if [ -f /mnt/note ]; then
          check "the hot-added volume holds what the last plug wrote" grep -qx "plug $((n - 1))" /mnt/note
        fi
        echo "plug $n" > /mnt/note
        sync
        umount /mnt
        echo "L2: vdb done $n"
      else
        echo "L2: FAIL mount /dev/vdb ($n)"
      fi
      for i in $(seq 1 600); do [ -b /dev/vdb ] || break; usleep 100000; done
      echo "L2: vdb gone $n"
    done ;;
  fio)
    # The benchmark (scenarios/blk_benchmark.sh): fio on the raw data disk /dev/vdb, direct I/O,
    # one job per line read from the console ("job NAME SEQ"; "quit" powers off), so that L1 can
    # take turns between guests job by job. Answers "L2: FIO NAME iops N bw KIB/S" (fio's terse
    # v3: read fields 7-8, write fields 48-49), then "L2: FIO-DONE SEQ". fio runs on vCPU 0 only:
    # left free, the guest's scheduler moves it between vCPUs at will, a request then often
    # wakes two vCPUs instead of one, and depth-1 figures under either VMM measure where the
    # guest put fio (docs/virtio.md).
    job() {  # job NAME RW BS IODEPTH ENGINE
      out=$(fio --name=$1 --filename=/dev/vdb --rw=$2 --bs=$3 --iodepth=$4 --ioengine=$5 \
        --direct=1 --cpus_allowed=0 --time_based --ramp_time=1 --runtime=${FIO_SECONDS:-5} \
        --size=256M \
        --output-format=terse --terse-version=3 2>&1 | tail -n 1)
      case "$2" in
        *write) echo "$out" | awk -F';' -v n=$1 '{ print "L2: FIO " n " iops " int($49) " bw " $48 }' ;;
        *) echo "$out" | awk -F';' -v n=$1 '{ print "L2: FIO " n " iops " int($8) " bw " $7 }' ;;
      esac
    }
    echo "L2: fio ready"
    while read -r cmd name seq; do
      case "$cmd $name" in
        "job randread-4k-qd1") job randread-4k-qd1 randread 4k 1 psync ;;
        "job randread-4k-qd32") job randread-4k-qd32 randread 4k 32 libaio ;;
        "job read-1m") job read-1m read 1M 4 libaio ;;
        "job write-1m") job write-1m write 1M 4 libaio ;;
        quit*) break ;;
        *) echo "L2: FAIL unknown fio command '$cmd $name'" ;;
      esac
      echo "L2: FIO-DONE $seq"
    done
    echo "L2: fio done"
    poweroff -f ;;
  *)
    echo "L2: FAIL unknown blkmode '$mode'"
    poweroff -f ;;
esac
