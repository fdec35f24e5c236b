# vfio/ against the real kernel: QEMU's edu device behind the emulated VT-d, bound to vfio-pci.
. /lab/lib.sh
edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -n1)
edu=${edu%/device}
echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id
group=$(basename "$(readlink "$edu/iommu_group")")
echo "lab: edu $(basename "$edu") in IOMMU group $group"
# Binding through new_id is asynchronous: wait for the group's device node.
for i in $(seq 1 50); do [ -c "/dev/vfio/$group" ] && break; usleep 100000; done
check "vfio/ container probe" container_probe "$group"
finish
