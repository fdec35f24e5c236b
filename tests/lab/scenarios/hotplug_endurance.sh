# Endurance: 1000 AddDevice/RemoveDevice cycles of edu into an L2 Linux guest that sees each one
# come and go (l2/hotplug_init.sh, watch mode), once without and once with the guest's vIOMMU
# (--iommu: each add also makes the device's own VFIO container and the guest's mappings). Every
# 100 cycles hotplug_bench prints what vmm holds: fds, threads, RSS, heap in use, mappings
# (/proc/PID/maps), host DMA mappings, MSI (KVM GSI) routes, memory listeners, KVM memory slots
# (and once with the device in, in cycle 1); then the growth from cycle 100 to the last. Prints
# numbers; fails only if a cycle fails.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2hp.cpio
CMD="console=ttyS0 reboot=k quiet hpmode=watch"
CYCLES=1000

edu_to_vfio
for setup in plain iommu; do
  args=""
  [ $setup = iommu ] && args="--iommu"
  rm -f /tmp/vmm.sock
  vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD" --api_socket=/tmp/vmm.sock $args \
    2>/tmp/vmm.$setup.err </dev/null >/tmp/vmm.$setup.log &
  vpid=$!
  check "vmm ($setup): L2 up" wait_log /tmp/vmm.$setup.log "L2: ready" 120
  start=$(uptime_cs)
  hotplug_bench $bdf $CYCLES grpc:/tmp/vmm.sock:/tmp/vmm.$setup.log --sample=100:$vpid \
    --settle_ms=20 | grep -E "sample|growth|cycles" | sed "s/^/lab: BENCH $setup /" |
    tee /tmp/endurance.$setup.out
  echo "lab: BENCH $setup: $CYCLES cycles in $(( ($(uptime_cs) - start) / 100 )) s"
  check "$setup: $CYCLES cycles" grep -q "growth from cycle 100 to cycle $CYCLES" /tmp/endurance.$setup.out
  vmmctl --socket=/tmp/vmm.sock shutdown --force >/dev/null
  wait $vpid
  rc=$?
  check "$setup: vmm exits 0 after a forced shutdown (rc=$rc)" test $rc -eq 0
  grep -E "seccomp|error" /tmp/vmm.$setup.err | head -n 5
done
finish
