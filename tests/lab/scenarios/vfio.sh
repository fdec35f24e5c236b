# vfio/ against the real kernel: two QEMU edu devices behind L1's emulated VT-d, bound to
# vfio-pci, driven by vfio_probe through the library (see tests/lab/vfio/vfio_probe.cc).
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
finish
