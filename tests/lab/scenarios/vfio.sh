# vfio/ against the real kernel: two QEMU edu devices behind L1's emulated VT-d, bound to
# vfio-pci, driven by vfio_probe through the library (see tests/lab/vfio/vfio_probe.cc), then the
# embedding example examples/viommu_shadow on one of them.
. /lab/lib.sh
edus=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | sed 's|/device$||')
set -- $edus
check "two edu devices on the PCI bus" test $# -eq 2
echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id
for edu in "$@"; do
  group=$(basename "$(readlink "$edu/iommu_group")")
  echo "lab: edu $(basename "$edu") in IOMMU group $group"
  # Binding through new_id is asynchronous: wait for the group's device node.
  for i in $(seq 1 50); do [ -c "/dev/vfio/$group" ] && break; usleep 100000; done
done
# The edu behind the root port (bus 01) first: the kernel can reset it.
check "vfio/ probe: container, group, device, DMA, IRQs, reset, two containers" \
  vfio_probe "$(basename "$2")" "$(basename "$1")"
# The embedding example (examples/viommu_shadow.h): a guest IOMMU's mappings shadowed into a
# container with vfio/ + iommu/ + memory/ only; edu's DMA goes through them, and not after.
group=$(basename "$(readlink "$2/iommu_group")")
viommu_shadow "$group" "$(basename "$2")" --edu >/tmp/shadow.log 2>&1
rc=$?
sed 's/^/  shadow| /' /tmp/shadow.log
check "examples/viommu_shadow on real VFIO: exit 0 (rc=$rc)" test "$rc" -eq 0
check "edu's DMA through the shadowed guest IOVAs arrives" \
  grep -q "DMA roundtrip through the guest's IOVAs: data verified" /tmp/shadow.log
check "after the guest's unmap the same DMA reaches nothing" \
  grep -q "guest RAM untouched" /tmp/shadow.log
finish
