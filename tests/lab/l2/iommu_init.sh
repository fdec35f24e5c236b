#!/bin/busybox sh
# /init of the L2 guest that vmm gives QEMU's edu device behind its guest-visible VT-d unit
# (vmm --iommu --device vfio-pci,...). It checks that Linux found and enabled the unit, that edu
# sits in an IOMMU group, that DMA through the kernel's DMA API works (each map and unmap is a
# change to the guest's IOMMU tables, shadowed into L1's VFIO container), and that MSI still
# arrives; each result on the console as "L2: PASS ..." or "L2: FAIL ...". Then it idles.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "L2: booted"
fails=0
check() {  # check DESCRIPTION COMMAND...
  desc=$1; shift
  if "$@"; then echo "L2: PASS $desc"; else echo "L2: FAIL $desc"; fails=$((fails + 1)); fi
}
dmesg | grep -E "DMAR|IOMMU|iommu" | sed 's/^/L2| /'
check "Linux found the DMAR table's remapping unit at 0xfed90000" \
  sh -c 'dmesg | grep -q "DMAR: DRHD base: 0x000000fed90000"'
check "intel-iommu is on (dmar0 registered)" test -d /sys/class/iommu/dmar0
check "it knows the unit is in caching mode" \
  sh -c 'dmesg | grep -q "batching disallowed due to virtualization"'
check "interrupt remapping is on (xAPIC mode)" \
  sh -c 'dmesg | grep -q "DMAR-IR: Enabled IRQ remapping in xapic mode"'
grep -E "IR-IO-APIC|IR-PCI-MSI" /proc/interrupts | sed 's/^/L2| /'
check "the serial console's interrupt is remapped (IR-IO-APIC)" \
  sh -c 'grep ttyS0 /proc/interrupts | grep -q IR-IO-APIC'
edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -1 | sed 's|/device$||')
echo "L2: edu at ${edu:-nowhere}"
check "edu is on the guest's PCI bus" test -n "$edu"
check "edu is in an IOMMU group" test -e "$edu/iommu_group"
echo "L2: edu's IOMMU domain type: $(cat $edu/iommu_group/type 2>/dev/null)"

insmod /modules/edu_msi.ko dma_rounds=10
dmesg | grep "edu-msi" | sed 's/^/L2| /'
check "DMA API: 10 roundtrips through the IOMMU verified" \
  sh -c 'dmesg | grep -q "edu-msi: DMA API: 10 roundtrips verified"'
check "DMA API: no DMAR fault" sh -c '! dmesg | grep -q "DMAR: \[DMA"'
msi_count() { awk '/edu-msi/ { n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print n }' /proc/interrupts; }
before=$(msi_count)
edu_guest raise 20
after=$(msi_count)
check "MSI: 20 raised interrupts counted in /proc/interrupts" \
  test -n "$before" -a -n "$after" -a "$((after - before))" -ge 20
grep edu-msi /proc/interrupts | sed 's/^/L2| /'
check "MSI: edu's vector is remapped (IR-PCI-MSI)" \
  sh -c 'grep edu-msi /proc/interrupts | grep -q IR-PCI-MSI'
# The driver goes: nothing of edu may stay mapped (L1 checks vmm's counters).
rmmod edu_msi
check "edu_msi unbound" sh -c '! grep -q edu-msi /proc/interrupts'

# A userspace driver on the guest's own VFIO, as DPDK or SPDK in a guest would be: edu bound to
# vfio-pci, its DMA at IOVAs the program picks (mapped by the guest's VFIO into the guest's VT-d
# tables, shadowed by vmm into L1), a DMA to an unmapped IOVA that must not arrive, MSI and INTx.
# With interrupt remapping, type1 needs no allow_unsafe_interrupts: it refuses VFIO_SET_IOMMU
# (EPERM) on a platform without it.
for m in irqbypass vfio; do insmod /modules/$m.ko; done
insmod /modules/vfio_iommu_type1.ko
for m in vfio_virqfd vfio-pci-core vfio-pci; do insmod /modules/$m.ko; done
echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id
for i in $(seq 1 50); do [ -e "$edu/driver" ] && break; usleep 100000; done
echo "L2: edu's driver now: $(basename "$(readlink "$edu/driver")")"
vfio_probe "$(basename "$edu")" > /tmp/probe.log 2>&1
sed 's/^/L2| /' /tmp/probe.log
check "userspace VFIO in the guest: vfio_probe passes (DMA at its IOVAs, unmapped IOVA faults, MSI)" \
  grep -q "probe: 0 failure(s)" /tmp/probe.log

echo "$(basename "$edu")" > /sys/bus/pci/drivers/vfio-pci/unbind
# Last, a guest that programs nonsense into the unit (nothing uses it any more; /dev/mem reaches
# the registers intel-iommu claimed because L1 boots L2 with iomem=relaxed): a root table
# outside its RAM, then a queue tail beyond the queue's 256 entries. The unit must say so as the
# hardware would (a fault record, reason 8, which the guest's own fault handler reports; the
# queue-error bit) and vmm must keep running (L1 checks).
gsts=$(devmem 0xfed9001c 32)
devmem 0xfed90020 64 0x7ffffff000
devmem 0xfed90018 32 $(( (gsts & 0x96ffffff) | 0x40000000 ))
for i in $(seq 1 20); do dmesg | grep -q "fault reason 0x08" && break; usleep 100000; done
dmesg | grep -A1 "DMAR: DRHD: handling fault" | sed 's/^/L2| /' | head -n 4
check "nonsense root table: the guest's fault handler reports reason 8" \
  sh -c 'dmesg | grep -q "fault reason 0x08"'
devmem 0xfed90088 32 0x7fff0
fsts=$(devmem 0xfed90034 32 2>&1)
check "nonsense queue tail: the unit reports an invalidation queue error (FSTS $fsts)" \
  test $(( fsts & 0x10 )) -ne 0
echo "L2: iommu checks done, $fails failure(s)"
while true; do sleep 10; done
