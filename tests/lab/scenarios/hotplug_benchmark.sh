# Hotplug latency, vmm vs QEMU, in this one L1: vmm's AddDevice/RemoveDevice over gRPC and QEMU's
# QMP device_add/device_del (until DEVICE_DELETED) of the same vfio-pci edu into the same L2 kernel
# and initramfs (watch mode), 20 cycles each, both driven by hotplug_bench over one long-lived
# connection; p50/p99, the ratios (goal: vmm at most 0.5x QEMU), and each control channel's floor
# (a call with no device work). Two guest RAM setups, the same for both VMMs:
#   default:  anonymous memory in transparent huge pages, faulted in as used (both VMMs' default);
#   hugetlb:  2 MiB hugetlb pages, all allocated at start (vmm --memory_backing=hugetlb
#             --prefault; QEMU memory-backend-memfd hugetlb=on,prealloc=on), the usual setup for
#             passthrough: VFIO pins hugetlb pages about 10x faster, and the first device does not
#             fault in what the guest never touched.
# Prints numbers; fails only if a cycle fails.
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

# Neither VMM pays L0's first touch of the L1 RAM its guest's pages land in (see lib.sh), nor
# L0's first translation of the L1 kernel code a hot-add runs (see warm_kernel.cc).
warm_l1_ram 1400
check "the kernel's hot-add paths warmed" warm_kernel $bdf

rss() { sed -n 's/^VmRSS: *//p' /proc/$1/status; }

run_vmm() {  # run_vmm SETUP VMM_ARGS...
  local setup=$1
  shift
  vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD" --api_socket=/tmp/vmm.sock "$@" \
    2>/tmp/vmm.err </dev/null >/tmp/vmm.log &
  local pid=$!
  check "vmm ($setup): L2 up" wait_log /tmp/vmm.log "L2: ready" 120
  echo "  vmm| resident before the first add: $(rss $pid)"
  hotplug_bench grpc /tmp/vmm.sock $bdf $CYCLES /tmp/vmm.log | tee /tmp/grpc.$setup.out
  check "vmm ($setup): $CYCLES cycles" grep -q "hotplug_bench: floor" /tmp/grpc.$setup.out
  # Where vmm's time goes (its own log): the attach and detach steps, and the guest's share of a
  # remove (from the eject request to its _EJ0). The first attach also faults in and pins the
  # guest RAM the guest never touched (unless it was prefaulted).
  { grep -m 1 "vmm: attached" /tmp/vmm.err; grep -E "vmm: (attached|detached|hp0)" /tmp/vmm.err | tail -n 3; } |
    sed 's/^/  vmm| /'
  echo "  vmm| resident after: $(rss $pid)"
  grep -q "hotplug_bench: floor" /tmp/grpc.$setup.out || tail -n 20 /tmp/vmm.log /tmp/vmm.err
  vmmctl --socket=/tmp/vmm.sock shutdown --force >/dev/null
  wait $pid
}

run_qemu() {  # run_qemu SETUP QEMU_ARGS...: Debian's QEMU, copied into L1, with KVM; ACPI PCI
  # hotplug on the i440fx root bus; qboot (in Debian's QEMU) instead of SeaBIOS, a minimal
  # firmware that boots -kernel directly.
  local setup=$1
  shift
  rm -f /tmp/qemu.log
  qemu-system-x86_64 -M pc -accel kvm -cpu host -m 256 -smp 1 -nodefaults -display none \
    -bios /usr/share/qemu/qboot.rom "$@" \
    -serial file:/tmp/qemu.log -qmp unix:/tmp/qmp.sock,server=on,wait=off \
    -kernel $K -initrd $I -append "$CMD" </dev/null >/tmp/qemu.err 2>&1 &
  local qpid=$!
  check "QEMU ($setup): L2 up" wait_log /tmp/qemu.log "L2: ready" 300 || tail -n 20 /tmp/qemu.log /tmp/qemu.err
  echo "  QEMU| resident before the first add: $(rss $qpid)"
  hotplug_bench qmp /tmp/qmp.sock $bdf $CYCLES /tmp/qemu.log | tee /tmp/qmp.$setup.out
  echo "  QEMU| resident after: $(rss $qpid)"
  check "QEMU ($setup): $CYCLES cycles" grep -q "hotplug_bench: floor" /tmp/qmp.$setup.out
  kill $qpid
  wait $qpid 2>/dev/null
  grep -v -E "option rom|terminating on signal" /tmp/qemu.err | head -5
}

run_vmm default
run_qemu default
# 128 pages would do (one VMM at a time); the rest is slack for QEMU's own use.
echo 160 >/proc/sys/vm/nr_hugepages
echo "lab: hugetlb pool: $(sed -n 's/^HugePages_Free: *//p' /proc/meminfo) free 2 MiB pages"
run_vmm hugetlb --memory_backing=hugetlb --prefault
run_qemu hugetlb -object memory-backend-memfd,id=ram,size=256M,hugetlb=on,hugetlbsize=2M,prealloc=on \
  -machine memory-backend=ram

p() { sed -n "s/^hotplug_bench: $2 .*p$3 \([0-9.]*\) ms.*/\1/p" "$1"; }  # p FILE WHAT 50|99
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
bench() {  # bench SETUP LABEL WHAT VMM_NAME QEMU_NAME [NOTE]
  local v50 v99 q50 q99
  v50=$(p /tmp/grpc.$1.out $3 50) v99=$(p /tmp/grpc.$1.out $3 99)
  q50=$(p /tmp/qmp.$1.out $3 50) q99=$(p /tmp/qmp.$1.out $3 99)
  echo "lab: BENCH $1 $2 vmm $4 p50 $v50 ms p99 $v99 ms; QEMU $5 p50 ${q50:-?} ms p99 ${q99:-?} ms; ratio p50 $(ratio $v50 $q50), p99 $(ratio $v99 $q99)$6"
}
first() { sed -n 's/^hotplug_bench: first add \([0-9.]*\) ms/\1/p' "$1"; }
for setup in default hugetlb; do
  bench $setup "add:   " add AddDevice device_add " (goal <= 0.5)"
  v=$(first /tmp/grpc.$setup.out) q=$(first /tmp/qmp.$setup.out)
  echo "lab: BENCH $setup first add: vmm $v ms; QEMU $q ms; ratio $(ratio $v $q)"
  bench $setup "remove:" remove RemoveDevice "device_del (until DEVICE_DELETED)" " (goal <= 0.5)"
  bench $setup "floor: " floor "Health.Check" "query-status"
done
finish
