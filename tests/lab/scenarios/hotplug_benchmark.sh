# Hotplug latency, vmm vs QEMU, in this one L1: vmm's AddDevice/RemoveDevice (vmmctl --time: the
# RPC alone) and QEMU's QMP device_add/device_del (until DEVICE_DELETED; qmp_hotplug) of the same
# vfio-pci edu into the same L2 kernel and initramfs (watch mode), 20 cycles each, p50/p99, and
# the ratios (goal: vmm at most 0.5x QEMU). Prints numbers; fails only if a cycle fails.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2hp.cpio
CMD="console=ttyS0 reboot=k quiet hpmode=watch"
CYCLES=20
wait_log() {  # wait_log FILE PATTERN SECONDS
  for i in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" && return 0; usleep 100000; done
  return 1
}
pct() { sort -n "$1" | awk -v p=$2 '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", v[i] }'; }
ms() { sed -n 's/.*took \([0-9.]*\)\(m\?s\).*/\1 \2/p' "$1" | awk '{ print ($2 == "s") ? $1 * 1000 : $1 }'; }

edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -1 | sed 's|/device$||')
bdf=$(basename "$edu")
echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id
group=$(basename "$(readlink "$edu/iommu_group")")
for i in $(seq 1 50); do [ -c "/dev/vfio/$group" ] && break; usleep 100000; done

# vmm.
vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD" --api_socket=/tmp/vmm.sock 2>/tmp/vmm.err \
  </dev/null >/tmp/vmm.log &
pid=$!
check "vmm: L2 up" wait_log /tmp/vmm.log "L2: ready" 120
: > /tmp/add.ms; : > /tmp/del.ms
ok=0
for c in $(seq 1 $CYCLES); do
  vmmctl --socket=/tmp/vmm.sock --time add hp0 $bdf >/tmp/a.out 2>&1 || { cat /tmp/a.out; break; }
  ms /tmp/a.out >> /tmp/add.ms
  wait_log /tmp/vmm.log "L2: edu appeared ($c)" 30 || break
  vmmctl --socket=/tmp/vmm.sock --time remove hp0 >/tmp/r.out 2>&1 || { cat /tmp/r.out; break; }
  ms /tmp/r.out >> /tmp/del.ms
  wait_log /tmp/vmm.log "L2: edu gone ($c)" 30 || break
  ok=$c
done
check "vmm: $CYCLES cycles" test $ok -eq $CYCLES
# The floor: a GetVm round trip (gRPC, the event loop, no device work), 20 times.
: > /tmp/get.ms
for c in $(seq 1 20); do
  vmmctl --socket=/tmp/vmm.sock --time get >/dev/null 2>/tmp/g.out && ms /tmp/g.out >> /tmp/get.ms
done
grep -E "vmm: (attached|detached)" /tmp/vmm.err | tail -n 2 | sed 's/^/  vmm| /'
echo "lab: BENCH vmm GetVm round trip (the RPC floor): p50 $(pct /tmp/get.ms 50) ms, p99 $(pct /tmp/get.ms 99) ms"
[ $ok -eq $CYCLES ] || { tail -n 20 /tmp/vmm.log; cat /tmp/a.out /tmp/r.out; }
vmmctl --socket=/tmp/vmm.sock shutdown --force >/dev/null
wait $pid
va50=$(pct /tmp/add.ms 50); va99=$(pct /tmp/add.ms 99)
vd50=$(pct /tmp/del.ms 50); vd99=$(pct /tmp/del.ms 99)

# QEMU (Debian's, copied into L1) with KVM, ACPI PCI hotplug on the i440fx root bus.
# qboot (in Debian's QEMU) instead of SeaBIOS: a minimal firmware that boots -kernel directly.
qemu-system-x86_64 -M pc -accel kvm -cpu host -m 256 -smp 1 -nodefaults -display none \
  -bios /usr/share/qemu/qboot.rom \
  -serial file:/tmp/qemu.log -qmp unix:/tmp/qmp.sock,server=on,wait=off \
  -kernel $K -initrd $I -append "$CMD" </dev/null >/tmp/qemu.err 2>&1 &
qpid=$!
check "QEMU: L2 up" wait_log /tmp/qemu.log "L2: ready" 300 || { tail -n 20 /tmp/qemu.log /tmp/qemu.err; }
qmp_hotplug /tmp/qmp.sock $bdf $CYCLES /tmp/qemu.log | tee /tmp/qmp.out
check "QEMU: $CYCLES cycles" grep -q "device_del until" /tmp/qmp.out
kill $qpid; wait $qpid 2>/dev/null
cat /tmp/qemu.err | head -5
qa50=$(sed -n 's/.*device_add.*p50 \([0-9.]*\) ms.*/\1/p' /tmp/qmp.out)
qa99=$(sed -n 's/.*device_add.*p99 \([0-9.]*\) ms.*/\1/p' /tmp/qmp.out)
qd50=$(sed -n 's/.*device_del.*p50 \([0-9.]*\) ms.*/\1/p' /tmp/qmp.out)
qd99=$(sed -n 's/.*device_del.*p99 \([0-9.]*\) ms.*/\1/p' /tmp/qmp.out)
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
echo "lab: BENCH add:    vmm AddDevice p50 $va50 ms p99 $va99 ms; QEMU device_add p50 ${qa50:-?} ms p99 ${qa99:-?} ms; ratio p50 $(ratio $va50 $qa50), p99 $(ratio $va99 $qa99) (goal <= 0.5)"
echo "lab: BENCH remove: vmm RemoveDevice p50 $vd50 ms p99 $vd99 ms; QEMU device_del p50 ${qd50:-?} ms p99 ${qd99:-?} ms; ratio p50 $(ratio $vd50 $qd50), p99 $(ratio $vd99 $qd99) (goal <= 0.5)"
finish
