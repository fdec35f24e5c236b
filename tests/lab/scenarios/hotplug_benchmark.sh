# Hotplug latency, vmm vs QEMU, in this one L1: vmm's AddDevice/RemoveDevice over gRPC and QEMU's
# QMP device_add/device_del (until DEVICE_DELETED) of the same vfio-pci edu into the same L2 kernel
# and initramfs (watch mode), 20 cycles, both VMMs up at once and driven by one hotplug_bench over
# a long-lived connection each, taking turns within every cycle (who goes first alternates), so
# that the lab's drift over a run weighs on both alike; p50/p99, the ratios (goal: vmm at most
# 0.5x QEMU), the paired ratios (p50 of each cycle's ratio), and each control channel's floor (a
# call with no device work). Two guest RAM setups, the same for both VMMs:
#   default:  anonymous memory in transparent huge pages, faulted in as used (both VMMs' default);
#   hugetlb:  2 MiB hugetlb pages, all allocated at start (vmm --memory_backing=hugetlb
#             --prefault; QEMU memory-backend-memfd hugetlb=on,prealloc=on), the usual setup for
#             passthrough: VFIO pins hugetlb pages about 10x faster, and the first device does not
#             fault in what the guest never touched.
# Also the kernel's floor under both: kernel_floor times the device open and the DMA map of
# guest-RAM-sized memory with no VMM around them, in this session, with both guests up, one after
# the other and alongside each other; and vmm's log says what the same two calls took inside each
# of its AddDevice calls.
# Prints numbers; fails only if a cycle fails.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2hp.cpio
CMD="console=ttyS0 reboot=k quiet hpmode=watch"
CYCLES=20

edu_to_vfio

# Neither VMM pays L0's first touch of the L1 RAM its guest's pages land in (see lib.sh), nor
# L0's first translation of the L1 kernel code a hot-add runs (see warm_kernel.cc).
warm_l1_ram 1400
check "the kernel's hot-add paths warmed" warm_kernel $bdf

# Resident memory, and how much of it is in transparent huge pages (type1 maps a huge page's 512
# small pages in one IOMMU mapping, and a run of small ones page by page).
rss() {
  local all thp
  all=$(sed -n 's/^VmRSS: *//p' /proc/$1/status | tr -s ' \t' ' ')
  thp=$(sed -n 's/^AnonHugePages: *//p' /proc/$1/smaps_rollup | tr -s ' \t' ' ')
  echo "$all ($thp in THP)"
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }'; }

start_vmm() {  # start_vmm SETUP VMM_ARGS...: sets vpid
  local setup=$1
  shift
  vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD" --api_socket=/tmp/vmm.sock "$@" \
    2>/tmp/vmm.err </dev/null >/tmp/vmm.log &
  vpid=$!
  check "vmm ($setup): L2 up" wait_log /tmp/vmm.log "L2: ready" 120
}

start_qemu() {  # start_qemu SETUP QEMU_ARGS...: Debian's QEMU, copied into L1, with KVM; ACPI PCI
  # hotplug on the i440fx root bus; qboot (in Debian's QEMU) instead of SeaBIOS, a minimal
  # firmware that boots -kernel directly. Sets qpid.
  local setup=$1
  shift
  rm -f /tmp/qemu.log
  qemu-system-x86_64 -M pc -accel kvm -cpu host -m 256 -smp 1 -nodefaults -display none \
    -bios /usr/share/qemu/qboot.rom "$@" \
    -serial file:/tmp/qemu.log -qmp unix:/tmp/qmp.sock,server=on,wait=off \
    -kernel $K -initrd $I -append "$CMD" </dev/null >/tmp/qemu.err 2>&1 &
  qpid=$!
  check "QEMU ($setup): L2 up" wait_log /tmp/qemu.log "L2: ready" 300 || tail -n 20 /tmp/qemu.log /tmp/qemu.err
}

measure() {  # measure SETUP: both VMMs up
  local setup=$1
  kernel_floor $bdf 256 $([ $setup = hugetlb ] && echo hugetlb || echo anonymous) 10 |
    tee /tmp/floor.$setup.out
  echo "  resident before the first add: vmm $(rss $vpid), QEMU $(rss $qpid)"
  hotplug_bench $bdf $CYCLES grpc:/tmp/vmm.sock:/tmp/vmm.log qmp:/tmp/qmp.sock:/tmp/qemu.log |
    tee /tmp/bench.$setup.out
  check "$setup: $CYCLES cycles of each VMM" grep -q "hotplug_bench: paired remove" /tmp/bench.$setup.out
  echo "  resident after: vmm $(rss $vpid), QEMU $(rss $qpid)"
  # Where vmm's time goes (its own log): the attach and detach steps, and the guest's share of a
  # remove (from the eject request to its _EJ0). The first attach also faults in and pins the
  # guest RAM the guest never touched (unless it was prefaulted).
  { grep -m 1 "vmm: attached" /tmp/vmm.err; grep -E "vmm: (attached|detached|hp0)" /tmp/vmm.err | tail -n 3; } |
    sed 's/^/  vmm| /'
  # The same two kernel calls inside vmm's adds after the first (the first also sets up the
  # container and faults in RAM), p50: the map and the open, which run alongside each other.
  sed -n 's/.*DMA map \([0-9]*\) ms with the open \([0-9]*\) ms.*/\1 \2/p' /tmp/vmm.err | tail -n +2 >/tmp/steps.$setup
  echo "map p50 $(cut -d' ' -f1 /tmp/steps.$setup | median) ms, open p50 $(cut -d' ' -f2 /tmp/steps.$setup | median) ms" >/tmp/steps.$setup.out
  grep -q "hotplug_bench: paired remove" /tmp/bench.$setup.out || tail -n 20 /tmp/vmm.log /tmp/vmm.err /tmp/qemu.log
  vmmctl --socket=/tmp/vmm.sock shutdown --force >/dev/null
  kill $qpid
  wait $vpid
  wait $qpid 2>/dev/null
  grep -v -E "option rom|terminating on signal" /tmp/qemu.err | head -5
}

start_vmm default
start_qemu default
measure default
# 128 pages for each VMM's guest, 128 for kernel_floor, and slack for QEMU's own use.
echo 416 >/proc/sys/vm/nr_hugepages
echo "lab: hugetlb pool: $(sed -n 's/^HugePages_Free: *//p' /proc/meminfo) free 2 MiB pages"
start_vmm hugetlb --memory_backing=hugetlb --prefault
start_qemu hugetlb -object memory-backend-memfd,id=ram,size=256M,hugetlb=on,hugetlbsize=2M,prealloc=on \
  -machine memory-backend=ram
measure hugetlb

p() { sed -n "s/^hotplug_bench: $2 $3 .*p$4 \([0-9.]*\) ms.*/\1/p" /tmp/bench.$1.out; }  # p SETUP grpc|qmp WHAT 50|99
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
paired() { sed -n "s/^hotplug_bench: paired $2 ratio p50 \([0-9.]*\)/\1/p" /tmp/bench.$1.out; }
bench() {  # bench SETUP LABEL WHAT VMM_NAME QEMU_NAME [NOTE]
  local v50 v99 q50 q99 pr
  v50=$(p $1 grpc $3 50) v99=$(p $1 grpc $3 99) q50=$(p $1 qmp $3 50) q99=$(p $1 qmp $3 99)
  pr=$(paired $1 $3)
  echo "lab: BENCH $1 $2 vmm $4 p50 $v50 ms p99 $v99 ms; QEMU $5 p50 ${q50:-?} ms p99 ${q99:-?} ms; ratio p50 $(ratio $v50 $q50), p99 $(ratio $v99 $q99)${pr:+, paired p50 $pr}$6"
}
first() { sed -n "s/^hotplug_bench: $2 first add \([0-9.]*\) ms/\1/p" /tmp/bench.$1.out; }
for setup in default hugetlb; do
  bench $setup "add:   " add AddDevice device_add " (goal <= 0.5)"
  v=$(first $setup grpc) q=$(first $setup qmp)
  echo "lab: BENCH $setup first add: vmm $v ms; QEMU $q ms; ratio $(ratio $v $q)"
  bench $setup "remove:" remove RemoveDevice "device_del (until DEVICE_DELETED)" " (goal <= 0.5)"
  bench $setup "floor: " floor "Health.Check" "query-status"
  # The kernel's floor next to QEMU's add: a VMM that added nothing of its own would still take
  # the faster of the two ways to make the two calls: one after the other, or alongside.
  fp() { sed -n "s/$1 p50 \([0-9.]*\) ms.*/\1/p" /tmp/floor.$setup.out; }
  fo=$(fp '.*rounds: open') fm=$(fp '.*), map') fb=$(fp '.*alongside the open)')
  fbm=$(fp '.*alongside the open) .*: map') q=$(p $setup qmp add 50)
  fsum=$(awk -v a="${fo:-0}" -v b="${fm:-0}" 'BEGIN { print a + b }')
  fmin=$(awk -v a="$fsum" -v b="${fb:-0}" 'BEGIN { print (b > 0 && b < a ? b : a) }')
  echo "lab: BENCH $setup kernel floor: open p50 $fo ms, map p50 $fm ms, one after the other $fsum ms; alongside $fb ms (the map in it $fbm ms) (kernel_floor); in vmm's adds $(cat /tmp/steps.$setup.out); the faster way / QEMU add p50 $(ratio $fmin $q)"
done
finish
