# virtio-net under a real guest, in L1's own network (taps with link-local addresses; nothing ever
# leaves QEMU): L2 pings L1 and 64 MiB go each way over TCP (tcp_copy), compared by SHA-256, on
# vmm's own data path and on the kernel's vhost-net (its interrupts delivered by KVM from vhost's
# eventfds), each also behind vmm's VT-d unit (interrupt remapping on, ACCESS_PLATFORM negotiated,
# the guest's buffers in a translated domain; vhost-net through its IOTLB, served by vmm), without
# caching mode (64 MiB) and, for vhost-net, with it (4 MiB: every DMA map and unmap trapped); a
# second interface hot-added over gRPC (vhost-net, made by the event loop), used and removed; two
# queue pairs on a multi-queue tap;
# virtio-vsock through vhost-vsock, a host program and a guest program talking both ways.
# Failure injection: a tap already in use, a bad MAC. The guest's side is l2/net_init.sh.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2net.cpio
SOCK=/tmp/vmm.sock
ctl() { vmmctl --socket=$SOCK "$@"; }
CMD="console=ttyS0 reboot=k panic=1 quiet"

# Persistent taps (busybox tunctl), addressed and up before vmm attaches to them.
for n in 1 2; do
  tunctl -t vmtap$n >/dev/null
  ip addr add 169.254.$n.1/24 dev vmtap$n
  ip link set vmtap$n up
done

# run TAG NETMODE SEND-MIB RECV-MIB VMM-FLAGS...: boots L2 on vmtap1 with the API on, and does
# L1's side of l2/net_init.sh's two transfers (SEND-MIB from L2, RECV-MIB to it); vmm keeps running
# ($pid, log $log) for the caller.
run() {
  tag=$1 mode=$2 send=$3 recv=$4; shift 4
  log=/tmp/$mode.log
  tcp_copy receive 5000 /tmp/from-l2 >/tmp/copy.out 2>&1 &
  listener=$!
  vmm --kernel=$K --initrd=$I --memory=256 --cpus=${CPUS:-2} --cmdline="$CMD netmode=$mode netsend=$send netrecv=$recv" \
    --api_socket=$SOCK "$@" </dev/null >$log 2>/tmp/vmm-$mode.err &
  pid=$!
  [ -n "${AFTER_START:-}" ] && $AFTER_START
  check "$tag: L2 is up" wait_log $log "L2: ready" 180
  grep "L2: eth0" $log | sed 's/^/  /'
  check "$tag: L2 pinged L1" wait_log $log "L2: PASS ping L1" 60
  if wait_log $log "L2: sent" 300; then wait $listener; else kill $listener; fi
  sent=$(sed -n 's/.*L2: sending \([0-9a-f]*\).*/\1/p' $log)
  got=$(sha256sum /tmp/from-l2 | cut -d' ' -f1)
  check "$tag: L2 -> L1: $send MiB arrived intact ($(cat /tmp/copy.out))" test "$sent" = "$got"
  rm -f /tmp/from-l2
  dd if=/dev/urandom of=/tmp/to-l2 bs=1M count=$recv 2>/dev/null
  want=$(sha256sum /tmp/to-l2 | cut -d' ' -f1)
  wait_log $log "L2: receiving" 60
  tcp_copy send 169.254.1.2 5001 /tmp/to-l2
  wait_log $log "L2: received $want" 300
  check "$tag: L1 -> L2: $recv MiB arrived intact ($(grep -o 'tcp_copy: .*' $log | tail -n 1 | tr -d '\r'))" \
    grep -q "L2: received $want" $log
  rm -f /tmp/to-l2
  grep "L2: irq" $log | sed 's/^/  /'
}
# done_ok TAG: waits for the guest to finish, checks the device's counters, stops vmm over the API
# and checks the guest reported no failure.
done_ok() {
  check "$1: L2 finished" wait_log $log "L2: done" 120
  ctl device net0 | sed 's/^/  /'
  rx=$(ctl device net0 | sed -n 's/.*; rx [0-9]* (\([0-9]*\) bytes).*/\1/p')
  tx=$(ctl device net0 | sed -n 's/.*, tx [0-9]* (\([0-9]*\) bytes).*/\1/p')
  check "$1: the counters saw both (rx $rx, tx $tx bytes; sent $send MiB, received $recv)" \
    test "${rx:-0}" -gt $((recv << 20)) -a "${tx:-0}" -gt $((send << 20))
  ctl shutdown --force >/dev/null
  wait $pid
  check "$1: vmm stopped (exit 0)" test $? -eq 0
  check "$1: no guest check failed" sh -c "! grep -q 'L2: FAIL' $log"
  grep "L2: FAIL" $log | head -n 5 | sed 's/^/  /'
  tail -n 3 /tmp/vmm-$mode.err | sed 's/^/  vmm| /'
}

run "own path" hotplug 64 64 --net tap=vmtap1,id=net0
expect_rc 5 "hotplug: a tap already in use is refused" ctl add-nic dup vmtap1
expect_rc 5 "hotplug: a multicast MAC is refused" ctl add-nic bad vmtap2 --mac=01:00:00:00:00:01
expect_rc 0 "hotplug: net1 added on vmtap2 (vhost-net)" ctl add-nic net1 vmtap2 --vhost
check "hotplug: L2 pinged L1 through it" wait_log $log "L2: PASS ping L1 on the hot-added" 120
ctl device net1 | sed 's/^/  /'
expect_rc 0 "hotplug: net1 removed once the guest released it" ctl remove net1 --wait=30s
check "hotplug: the guest saw it go" wait_log $log "L2: eth1 gone" 60
done_ok "own path"

# vhost-net, and virtio-vsock (vhost-vsock): L2 is CID 3; each side listens and connects.
ping_pong listen vsock 5678 1000 >/tmp/vsock-l1.out 2>&1 &
vsock_listener=$!
# Multi-queue: two pairs on a multi-queue tap vmm makes itself (busybox's tunctl cannot make one);
# L1 moves its address there once it exists. Linux asks for both pairs (VQ_PAIRS_SET 2).
mq_up() {
  for i in $(seq 1 100); do [ -e /sys/class/net/vmtapmq ] && break; usleep 100000; done
  ip addr del 169.254.1.1/24 dev vmtap1
  ip addr add 169.254.1.1/24 dev vmtapmq
  ip link set vmtapmq up
}
AFTER_START=mq_up
run "multi-queue" mq 8 8 --net tap=vmtapmq,id=net0,queues=2
AFTER_START=
check "multi-queue: the guest has two queue pairs" grep -q "L2: eth0 .* queues 2" $log
done_ok "multi-queue"
ip addr add 169.254.1.1/24 dev vmtap1

# One vCPU on vhost-net: with two on L1's one CPU, busybox nc's small writes made the guest-to-host
# stream crawl under vhost=on, QEMU's as much as vmm's (16 MiB: QEMU 142 s, vmm 58 s;
# docs/virtio.md).
CPUS=1
run "vhost-net" vsock 64 64 --net tap=vmtap1,id=net0,vhost=on --vsock cid=3
check "vsock: the guest reached the host" grep -q "L2: PASS vsock to the host" $log
grep "ping_pong: " $log | sed 's/^/  /'
check "vsock: the host reached the guest" sh -c "ping_pong connect vsock:3 1234 1000 >/tmp/vsock-l1c.out"
sed 's/^/  L1 /' /tmp/vsock-l1c.out
check "vsock: the guest saw the host's messages come back" wait_log $log "L2: PASS vsock from the host" 30
wait $vsock_listener
check "vsock: the host's listener echoed the guest's 1000 messages" test $? -eq 0
ctl device vsock0 | sed 's/^/  /'
done_ok "vhost-net"
CPUS=2

# translated TAG TYPE: the guest negotiated ACCESS_PLATFORM and its device is in a translated
# domain of TYPE: DMA-FQ (lazy: unmaps flushed in batches) without caching mode, DMA (strict) with.
translated() {
  check "$1: ACCESS_PLATFORM, a translated ($2) domain" \
    sh -c "tr -d '\r' <$log | grep -q 'L2: eth0 access_platform 1 domain $2\$'"
  grep "L2: eth0 access_platform" $log | sed 's/^/  /'
}
# iotlb_served TAG MODE: vhost reached the guest's buffers through its IOTLB, which vmm filled
# and emptied.
iotlb_served() {
  grep "vhost IOTLB" /tmp/vmm-$2.err | sed 's/^/  vmm| /'
  check "$1: vmm answered the kernel's IOTLB misses and sent it the unmaps" \
    grep -q "vhost IOTLB served [1-9][0-9]* misses with [1-9][0-9]* updates, sent [1-9][0-9]* invalidations, 0 faults" /tmp/vmm-$2.err
}
# Behind the vIOMMU without caching mode (what a VM without passthrough devices wants): the guest
# flushes its unmaps in batches and reports no maps, and the full 64 MiB go each way. One vCPU:
# with two on L1's one CPU, a loaded L1 (tools/test runs two lab machines at once) made the
# guest-to-host stream 8x slower (253 s against 33 s alone).
CPUS=1
run "own path, vIOMMU" iommu 64 64 --iommu --iommu_caching_mode=false --irqchip=split --net tap=vmtap1,id=net0
translated "own path, vIOMMU" DMA-FQ
done_ok "own path, vIOMMU"

run "vhost-net, vIOMMU" iommuvhost 64 64 --iommu --iommu_caching_mode=false --irqchip=split --net tap=vmtap1,id=net0,vhost=on
translated "vhost-net, vIOMMU" DMA-FQ
done_ok "vhost-net, vIOMMU"
iotlb_served "vhost-net, vIOMMU" iommuvhost

# In caching mode (passthrough's) every buffer the guest maps and unmaps is an invalidation
# trapped by vmm, flushed at once: 4 MiB each way, on vhost-net, whose IOTLB then hears every
# map's invalidation too (vmm's own path in caching mode is virtio_blk_lab_test's --iommu boot).
run "vhost-net, vIOMMU, caching mode" iommucmvhost 4 4 --iommu --irqchip=split --net tap=vmtap1,id=net0,vhost=on
translated "vhost-net, vIOMMU, caching mode" DMA
done_ok "vhost-net, vIOMMU, caching mode"
iotlb_served "vhost-net, vIOMMU, caching mode" iommucmvhost
finish
