# Lab smoke test: the nested machine provides what every other lab scenario relies on.
. /lab/lib.sh
check "/dev/kvm exists in L1 (nested SVM)" test -c /dev/kvm
out=$(hello_guest 2>&1)
echo "hello_guest: $out"
check "a vmmkit guest runs on L1's KVM" test "$out" = "Hello from a vmmkit guest!"
edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -n1)
edu=${edu%/device}
check "edu is on the PCI bus" test -n "$edu"
echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id
group=$(basename "$(readlink "$edu/iommu_group")")
echo "edu: $(basename "$edu") in IOMMU group $group"
check "edu is bound to vfio-pci" test "$(basename "$(readlink "$edu/driver")")" = vfio-pci
check "/dev/vfio/$group exists" test -c "/dev/vfio/$group"
finish
