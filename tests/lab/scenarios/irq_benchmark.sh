# Interrupt cost in L2, the same edu passed through by each in turn in one L1: MSI and INTx
# roundtrips per second (raise -> guest handler -> acknowledge) under vmm --irqchip=kernel, under
# vmm --irqchip=split --iommu (vmm's IOAPIC, every interrupt through the VT-d's remapping table)
# and under QEMU with intremap=on and kernel-irqchip=split; ratios against vmm's kernel irqchip
# and against QEMU. Also vmm's boot time (its boot timer) with either irqchip. Goals: MSI rate
# with remapping within 5% of vmm without it and at least QEMU's; boot with the split irqchip at
# most 5% slower.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2irq.cpio
N=500
ROUNDS=3

edu_to_vfio
check "edu bound to vfio-pci (group $group)" test -c "/dev/vfio/$group"

finished() {  # finished WHO LOG
  if grep -q "L2: bench done" $2; then check "$1: the guest finished" true; else
    check "$1: the guest finished" false
    tail -n 20 $2 /tmp/qemu.err 2>/dev/null | sed 's/^/  | /'
  fi
}
run_vmm() {  # run_vmm LOG [VMM_ARGS...]
  local log=$1
  shift
  timeout 240 vmm --kernel=$K --initrd=$I --memory=256 --boot_timer \
    --cmdline="console=ttyS0 reboot=k quiet iommu=pt l2rounds=$N" \
    --device vfio-pci,host=$bdf "$@" </dev/null >$log 2>&1
  finished "vmm $*" $log
}
run_qemu() {  # run_qemu LOG
  timeout 240 qemu-system-x86_64 -L /usr/share/seabios -L /usr/share/qemu \
    -M q35,kernel-irqchip=split -accel kvm -cpu host -m 256 -smp 1 -nodefaults -display none \
    -device intel-iommu,intremap=on,caching-mode=on -device vfio-pci,host=$bdf \
    -serial file:$1 -kernel $K -initrd $I \
    -append "console=ttyS0 reboot=k quiet iommu=pt l2rounds=$N" </dev/null >/tmp/qemu.err 2>&1
  finished "QEMU" $1
}

for r in $(seq 1 $ROUNDS); do
  run_vmm /tmp/kernel.$r.log --irqchip=kernel
  run_vmm /tmp/split.$r.log --irqchip=split --iommu
  run_qemu /tmp/qemu.$r.log
  for who in kernel split qemu; do
    grep -E "L2: (booted|MSI|INTx)|guest boot time" /tmp/$who.$r.log | sed "s/^/  $who round $r| /"
  done
done
check "vmm --irqchip=split --iommu: the guest remapped its interrupts" \
  grep -q "Enabled IRQ remapping in xapic mode" /tmp/split.1.log
check "QEMU: the guest remapped its interrupts" grep -q "Enabled IRQ remapping" /tmp/qemu.1.log
check "vmm --irqchip=kernel: no remapping" grep -q "no IRQ remapping" /tmp/kernel.1.log

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }'; }
# Rates per second, the median over the rounds.
msi() { cat /tmp/$1.*.log | sed -n "s/.*L2: MSI: $N roundtrips in \([0-9]*\) us.*/\1/p" |
  awk -v n=$N '{ printf "%.0f\n", n * 1e6 / $1 }' | median; }
intx() { cat /tmp/$1.*.log | sed -n 's/.*L2: INTx: .*: \([0-9]*\)\/s.*/\1/p' | median; }
boot() { cat /tmp/$1.*.log | sed -n 's/.*guest boot time: \([0-9]*\) ms.*/\1/p' | median; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
mk=$(msi kernel) ms=$(msi split) mq=$(msi qemu)
ik=$(intx kernel) is=$(intx split) iq=$(intx qemu)
bk=$(boot kernel) bs=$(boot split)
check "MSI and INTx rates from all three" test "$mk" != "?" -a "$ms" != "?" -a "$mq" != "?" -a \
  "$ik" != "?" -a "$is" != "?" -a "$iq" != "?"
echo "lab: BENCH edu MSI roundtrips/s (median of $ROUNDS rounds of $N): vmm kernel irqchip $mk, vmm split + remapping $ms, QEMU split + remapping $mq; split/kernel $(ratio $ms $mk) (goal >= 0.95), split/QEMU $(ratio $ms $mq) (goal >= 1)"
echo "lab: BENCH edu INTx roundtrips/s (median of $ROUNDS rounds of $N): vmm kernel irqchip $ik, vmm split + remapping $is, QEMU split + remapping $iq; split/kernel $(ratio $is $ik), split/QEMU $(ratio $is $iq)"
echo "lab: BENCH vmm boot to the guest's init (median of $ROUNDS): kernel irqchip $bk ms, split + remapping $bs ms; split/kernel $(ratio $bs $bk) (goal <= 1.05)"
finish
