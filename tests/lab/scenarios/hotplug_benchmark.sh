# Hotplug latency, vmm vs QEMU, in this one L1: vmm's AddDevice/RemoveDevice over gRPC and QEMU's
# QMP device_add/device_del (until DEVICE_DELETED) of the same vfio-pci edu into the same L2 kernel
# and initramfs (watch mode), 20 cycles each, both driven by hotplug_bench over one long-lived
# connection; p50/p99, the ratios (goal: vmm at most 0.5x QEMU), and each control channel's floor
# (a call with no device work). Prints numbers; fails only if a cycle fails.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2hp.cpio
CMD="console=ttyS0 reboot=k quiet hpmode=watch"
CYCLES=20
wait_log() {  # wait_log FILE PATTERN SECONDS
  for i in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" && return 0; usleep 100000; done
  return 1
}

edu_to_vfio

# vmm.
vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD" --api_socket=/tmp/vmm.sock 2>/tmp/vmm.err \
  </dev/null >/tmp/vmm.log &
pid=$!
check "vmm: L2 up" wait_log /tmp/vmm.log "L2: ready" 120
# Guest RAM the guest has touched so far: the first add also faults in (zeroes) the rest to pin it.
echo "  vmm| resident before the first add: $(sed -n 's/^VmRSS: *//p' /proc/$pid/status)"
hotplug_bench grpc /tmp/vmm.sock $bdf $CYCLES /tmp/vmm.log | tee /tmp/grpc.out
check "vmm: $CYCLES cycles" grep -q "hotplug_bench: floor" /tmp/grpc.out
# Where vmm's time goes (its own log): the attach and detach steps, and the guest's share of a
# remove (from the eject request to its _EJ0). The first attach also faults in and pins the guest
# RAM the guest never touched.
{ grep -m 1 "vmm: attached" /tmp/vmm.err; grep -E "vmm: (attached|detached|hp0)" /tmp/vmm.err | tail -n 3; } |
  sed 's/^/  vmm| /'
echo "  vmm| resident after: $(sed -n 's/^VmRSS: *//p' /proc/$pid/status)"
echo "  vmm| guest RAM in 2 MiB pages: $(sed -n 's/^AnonHugePages: *//p' /proc/$pid/smaps_rollup)"
grep -q "hotplug_bench: floor" /tmp/grpc.out || tail -n 20 /tmp/vmm.log /tmp/vmm.err
vmmctl --socket=/tmp/vmm.sock shutdown --force >/dev/null
wait $pid

# QEMU (Debian's, copied into L1) with KVM, ACPI PCI hotplug on the i440fx root bus.
# qboot (in Debian's QEMU) instead of SeaBIOS: a minimal firmware that boots -kernel directly.
qemu-system-x86_64 -M pc -accel kvm -cpu host -m 256 -smp 1 -nodefaults -display none \
  -bios /usr/share/qemu/qboot.rom \
  -serial file:/tmp/qemu.log -qmp unix:/tmp/qmp.sock,server=on,wait=off \
  -kernel $K -initrd $I -append "$CMD" </dev/null >/tmp/qemu.err 2>&1 &
qpid=$!
check "QEMU: L2 up" wait_log /tmp/qemu.log "L2: ready" 300 || { tail -n 20 /tmp/qemu.log /tmp/qemu.err; }
echo "  QEMU| resident before the first add: $(sed -n 's/^VmRSS: *//p' /proc/$qpid/status)"
hotplug_bench qmp /tmp/qmp.sock $bdf $CYCLES /tmp/qemu.log | tee /tmp/qmp.out
echo "  QEMU| resident after: $(sed -n 's/^VmRSS: *//p' /proc/$qpid/status), in 2 MiB pages: $(sed -n 's/^AnonHugePages: *//p' /proc/$qpid/smaps_rollup)"
check "QEMU: $CYCLES cycles" grep -q "hotplug_bench: floor" /tmp/qmp.out
kill $qpid; wait $qpid 2>/dev/null
cat /tmp/qemu.err | head -5
p() { sed -n "s/^hotplug_bench: $2 .*p$3 \([0-9.]*\) ms.*/\1/p" "$1"; }  # p FILE WHAT 50|99
for f in grpc qmp; do
  for w in add remove floor; do
    eval "${f}_${w}50=\$(p /tmp/$f.out $w 50); ${f}_${w}99=\$(p /tmp/$f.out $w 99)"
  done
done
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
bench() {  # bench LABEL WHAT VMM_NAME QEMU_NAME
  eval "v50=\$grpc_${2}50 v99=\$grpc_${2}99 q50=\$qmp_${2}50 q99=\$qmp_${2}99"
  echo "lab: BENCH $1 vmm $3 p50 $v50 ms p99 $v99 ms; QEMU $4 p50 ${q50:-?} ms p99 ${q99:-?} ms; ratio p50 $(ratio $v50 $q50), p99 $(ratio $v99 $q99)$5"
}
bench "add:   " add AddDevice device_add " (goal <= 0.5)"
bench "remove:" remove RemoveDevice "device_del (until DEVICE_DELETED)" " (goal <= 0.5)"
bench "floor: " floor "Health.Check" "query-status"
finish
