# virtio-blk under a real guest: L2 boots with its root file system on a disk vmm serves
# (--disk, ext4 made here with mke2fs -d), writes 8 MiB and syncs, reboots, and reads it back;
# writes and flushes a file, vmm is killed with SIGKILL, and the next boot finds the file; the
# same disk behind vmm's VT-d unit (the guest's virtio driver through the DMA API, interrupt
# remapping on); a volume hot-added over gRPC, mounted, written, removed and added again.
# Failure injection: an image outside --disk-dir (Landlock), one in use, a missing one, a second
# vmm on a locked image. The guest's side is l2/blk_init.sh (initramfs) and l2/disk_init.sh (the
# disk's /init).
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2blk.cpio
SOCK=/tmp/vmm.sock
ctl() { vmmctl --socket=$SOCK "$@"; }
CMD="console=ttyS0 reboot=k panic=1 quiet root=/dev/vda"

# The root disk: busybox and the disk's /init, in a sparse 64 MiB ext4 image.
. /lab/root_disk.sh
if ! make_root_disk /tmp/root.img 64M /lab/disk_init.sh /lab/bin/mke2fs; then
  check "root image made (mke2fs -d)" false
  finish
  exit 1
fi

boot() {  # boot LOG MODE VMM-FLAGS...: runs vmm on the root image until the guest stops it.
  log=$1 mode=$2; shift 2
  timeout 300 vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD blkmode=$mode" "$@" \
    </dev/null >$log 2>/tmp/vmm-$mode.err
  rc=$?
  sed 's/^/  L2| /' $log | grep -v "^  L2| *$" | head -n 20
}

# Boot 1 writes and reboots; boot 2 reads back. Two vCPUs and two queues: multi-queue in use.
boot /tmp/write.log write --cpus=2 --disk path=/tmp/root.img,id=root,queues=2
check "boot 1: L2 came up from /dev/vda" grep -q "L2: PASS root is on virtio-blk" /tmp/write.log
check "boot 1: two queues, the disk's id as its serial" grep -q "L2: vda queues 2, serial root" /tmp/write.log
check "boot 1: wrote and synced, then the guest rebooted (vmm exit 0)" \
  sh -c "grep -q 'L2: wrote' /tmp/write.log && test $rc -eq 0"
boot /tmp/read.log read --cpus=2 --disk path=/tmp/root.img,id=root,queues=2
check "boot 2: 8 MiB read back intact after the reboot" grep -q "L2: PASS 8 MiB written" /tmp/read.log
check "boot 2: the small file too" grep -q "L2: PASS the small file too" /tmp/read.log
check "boot 2: fstrim (discard) succeeded" grep -q "L2: PASS fstrim" /tmp/read.log
check "boot 2: no guest check failed" sh -c "! grep -q 'L2: FAIL' /tmp/write.log /tmp/read.log"
check "boot 2: the guest powered off (vmm exit 0)" test "$rc" -eq 0

# Durability: the guest's sync is acknowledged, then vmm dies by SIGKILL with the guest running.
vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD blkmode=durable" \
  --disk path=/tmp/root.img </dev/null >/tmp/durable.log 2>/tmp/vmm-durable.err &
pid=$!
check "durable: the guest's sync completed" wait_log /tmp/durable.log "L2: synced" 120
# A second vmm cannot take the image meanwhile: it is locked.
timeout 30 vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD" --disk path=/tmp/root.img \
  </dev/null >/tmp/second.log 2>&1
check "durable: a second vmm on the same image is refused (locked)" grep -q "locked by another" /tmp/second.log
kill -9 $pid
wait $pid
check "durable: vmm was killed (status 137)" test $? -eq 137
boot /tmp/durable2.log durable-check --disk path=/tmp/root.img
check "durable: the flushed file survived SIGKILL" grep -q "L2: PASS the file flushed" /tmp/durable2.log

# Behind the guest-visible VT-d unit, interrupt remapping on (split irqchip).
vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD blkmode=iommu" --iommu --irqchip=split \
  --disk path=/tmp/root.img --api_socket=$SOCK </dev/null >/tmp/iommu.log 2>/tmp/vmm-iommu.err &
pid=$!
check "vIOMMU: the guest's checks ran" wait_log /tmp/iommu.log "L2: iommu checked" 300
vmmctl --socket=$SOCK device disk0 >/tmp/iommu-dev.out 2>&1
sed 's/^/  /' /tmp/iommu-dev.out
check "vIOMMU: GetDevice shows the disk's guest domain with translation on" \
  grep -qE "iommu.*domain [0-9]+" /tmp/iommu-dev.out
wait $pid
sed 's/^/  L2| /' /tmp/iommu.log | grep "L2: " | head -n 20
check "vIOMMU: the guest found the VT-d unit" grep -q "L2: DMAR: Intel(R) Virtualization" /tmp/iommu.log
check "vIOMMU: the disk's DMA is translated" grep -q "L2: PASS   ... translated" /tmp/iommu.log
check "vIOMMU: the driver accepted ACCESS_PLATFORM" grep -q "L2: PASS the driver accepted" /tmp/iommu.log
check "vIOMMU: interrupt remapping on" grep -q "L2: DMAR-IR: Enabled IRQ remapping" /tmp/iommu.log
check "vIOMMU: the disk is behind it" grep -q "L2: PASS the disk's PCI function is in an IOMMU group" /tmp/iommu.log
check "vIOMMU: 8 MiB through it, read back intact" grep -q "L2: PASS 8 MiB through the vIOMMU" /tmp/iommu.log
check "vIOMMU: no guest check failed" sh -c "! grep -q 'L2: FAIL' /tmp/iommu.log"

# Hot-add a volume over gRPC, use it, remove it, add it again.
mkdir -p /tmp/vols
truncate -s 32M /tmp/vols/vol0.img
check "volume image made" /lab/bin/mke2fs -q -t ext4 -F /tmp/vols/vol0.img
truncate -s 32M /tmp/outside.img
vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD blkmode=hotplug" \
  --disk path=/tmp/root.img --disk-dir=/tmp/vols --api_socket=$SOCK \
  </dev/null >/tmp/hp.log 2>/tmp/vmm-hp.err &
pid=$!
check "hotplug: L2 is up" wait_log /tmp/hp.log "L2: ready" 120
expect_rc 7 "hotplug: an image outside --disk-dir is refused (Landlock)" ctl add-disk bad /tmp/outside.img
check "  ... naming the step" grep -q "AddDevice bad: open the image" /tmp/ctl.out
expect_rc 5 "hotplug: the root image again is refused (in use)" ctl add-disk dup /tmp/root.img
expect_rc 5 "hotplug: a missing image is refused" ctl add-disk gone /tmp/vols/none.img
check "  ... and nothing was added" sh -c "! vmmctl --socket=$SOCK devices | grep -qE 'bad|dup|gone'"
# The first plug's I/O goes through an io_uring (made on the confined event loop), the second's
# through the worker thread itself; the second reads what the first wrote and flushed, and the
# image is free to plug again as soon as the first is removed (the ring holds no file).
for n in 1 2; do
  engine=io_uring
  [ $n -eq 2 ] && engine=threads
  expect_rc 0 "hotplug $n: vol0 added ($engine)" ctl add-disk vol0 /tmp/vols/vol0.img --engine=$engine
  check "hotplug $n: the guest mounted it, wrote and unmounted" wait_log /tmp/hp.log "L2: vdb done $n" 60
  ctl device vol0 | sed 's/^/  /'
  check "hotplug $n: GetDevice shows the $engine engine" \
    sh -c "vmmctl --socket=$SOCK device vol0 | grep -q 'queue(s) ($engine)'"
  check "hotplug $n: its writes and flushes are counted" \
    sh -c "vmmctl --socket=$SOCK device vol0 | grep -q 'writes [1-9].*flushes [1-9]'"
  expect_rc 0 "hotplug $n: vol0 removed once the guest released it" ctl remove vol0 --wait=30s
  check "hotplug $n: the guest saw it go" wait_log /tmp/hp.log "L2: vdb gone $n" 30
done
check "hotplug: the second plug read what the first wrote" grep -q "L2: PASS the hot-added volume holds" /tmp/hp.log
check "hotplug: no guest check failed" sh -c "! grep -q 'L2: FAIL' /tmp/hp.log"
ctl shutdown --force >/dev/null
wait $pid
check "hotplug: vmm exited 0" test $? -eq 0
sed 's/^/  vmm| /' /tmp/vmm-*.err | grep -v "^  vmm| *$" | tail -n 20
finish
