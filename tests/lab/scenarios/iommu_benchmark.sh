# vmm's guest-visible VT-d against QEMU's intel-iommu in caching mode, in one L1, the same edu
# passed through to an L2 Linux by each in turn (vmm, QEMU, vmm, QEMU, ...): inside the guest,
# the latency of one VFIO map + unmap pair on the guest's own VFIO (what a DPDK or SPDK program
# in a guest pays per buffer), 4 KiB and 2 MiB pages, p50 and p99, and the ratio vmm / QEMU
# (goal: at most 0.5). Then, under vmm alone, the guest's DMA-API roundtrips through edu with and
# without --iommu (edu finishes each DMA on a 100 ms timer, so this shows only that the vIOMMU
# adds nothing visible at that scale).
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2iob.cpio
CMD="console=ttyS0 reboot=k quiet"
ROUNDS=3

edu_to_vfio
check "edu bound to vfio-pci (group $group)" test -c "/dev/vfio/$group"

run_vmm() {  # run_vmm LOG MODE [VMM_ARGS...]
  local log=$1 mode=$2
  shift 2
  timeout 240 vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD l2mode=$mode" \
    --device vfio-pci,host=$bdf "$@" </dev/null >$log 2>&1
  finished "vmm ($mode $*)" $log
}
finished() {  # finished WHO LOG
  if grep -q "L2: bench done" $2; then check "$1: the guest finished" true; else
    check "$1: the guest finished" false
    tail -n 20 $2 /tmp/qemu.err 2>/dev/null | sed 's/^/  | /'
  fi
}
run_qemu() {  # run_qemu LOG MODE
  local log=$1 mode=$2
  timeout 240 qemu-system-x86_64 -L /usr/share/seabios -L /usr/share/qemu \
    -M q35 -accel kvm -cpu host -m 256 -smp 1 -nodefaults \
    -display none -device intel-iommu,caching-mode=on -device vfio-pci,host=$bdf \
    -serial file:$log -kernel $K -initrd $I -append "$CMD l2mode=$mode" </dev/null \
    >/tmp/qemu.err 2>&1
  finished "QEMU ($mode)" $log
}

for r in $(seq 1 $ROUNDS); do
  run_vmm /tmp/vmm.$r.log maplat --iommu
  grep "L2: latency" /tmp/vmm.$r.log | sed "s/^/  vmm  round $r| /"
  run_qemu /tmp/qemu.$r.log maplat
  grep "L2: latency" /tmp/qemu.$r.log | sed "s/^/  QEMU round $r| /"
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }'; }
# lat WHO SIZE 50|99: the median over the rounds.
lat() { cat /tmp/$1.*.log | sed -n "s/.*L2: latency: $2 pairs [0-9]* p50 \([0-9.]*\) us p99 \([0-9.]*\) us.*/\1 \2/p" |
  awk -v c=$([ $3 = 50 ] && echo 1 || echo 2) '{ print $c }' | median; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
for size in 4096 2097152; do
  v50=$(lat vmm $size 50) v99=$(lat vmm $size 99) q50=$(lat qemu $size 50) q99=$(lat qemu $size 99)
  check "latency figures for $size-byte pages from both VMMs" test "$v50" != "?" -a "$q50" != "?"
  echo "lab: BENCH guest VFIO map+unmap of $size bytes (median of $ROUNDS rounds of 100 pairs): vmm p50 $v50 us p99 $v99 us; QEMU p50 $q50 us p99 $q99 us; ratio p50 $(ratio $v50 $q50), p99 $(ratio $v99 $q99) (goal <= 0.5)"
done

for r in 1 2; do
  run_vmm /tmp/dma.on.$r.log dmaapi --iommu
  run_vmm /tmp/dma.off.$r.log dmaapi
done
us() { cat /tmp/dma.$1.*.log | sed -n 's/.*20 roundtrips verified in \([0-9]*\) us.*/\1/p' | median; }
on=$(us on) off=$(us off)
check "DMA-API roundtrips timed with and without the vIOMMU" test "$on" != "?" -a "$off" != "?"
echo "lab: BENCH edu DMA-API 20 roundtrips under vmm: with --iommu $on us, without $off us, ratio $(ratio $on $off)"
finish
