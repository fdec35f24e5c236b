# AddDevice of a device whose IOMMU group is not viable (issue 8's "group not viable"): two edus
# behind a PCIe-to-PCI bridge share one IOMMU group (the bridge issues their DMA as its own), one
# bound to vfio-pci, the other to a kernel driver (uio_pci_generic). AddDevice fails with
# FAILED_PRECONDITION naming the step and the device in the way, and leaves nothing behind; once
# the other device is handed to vfio-pci too, the same AddDevice succeeds. The guest is a halting
# ELF: nothing here needs it to answer.
. /lab/lib.sh
SOCK=/tmp/vmm.sock
ctl() { vmmctl --socket=$SOCK "$@"; }
resources() { ctl get | sed -n 's/^resources //p' | sed 's/, heap [0-9]* KiB//; s/, threads [0-9]*//'; }
bind() {  # bind BDF DRIVER
  d=/sys/bus/pci/devices/$1
  [ -e $d/driver ] && echo "$1" > $d/driver/unbind
  echo "$2" > $d/driver_override
  echo "$1" > /sys/bus/pci/drivers_probe
  test "$(basename "$(readlink $d/driver)")" = "$2"
}

set -- $(for d in /sys/bus/pci/devices/*; do grep -q 0x11e8 $d/device && basename $d; done)
a=$1 b=$2
group=$(basename "$(readlink /sys/bus/pci/devices/$a/iommu_group)")
check "edu $a and $b share IOMMU group $group" \
  test "$(basename "$(readlink /sys/bus/pci/devices/$b/iommu_group)")" = "$group"
check "$a bound to vfio-pci" bind $a vfio-pci
check "$b bound to uio_pci_generic" bind $b uio_pci_generic
ls /sys/kernel/iommu_groups/$group/devices | sed 's/^/  group| /'

vmm --kernel=/lab/idle.elf --memory=64 --serial=none --api_socket=$SOCK </dev/null \
  >/tmp/vmm.log 2>&1 &
pid=$!
for i in $(seq 1 100); do [ -S $SOCK ] && break; usleep 100000; done
base=$(resources)
echo "lab: resources before: $base"
expect_rc 4 "AddDevice with the group not viable: FAILED_PRECONDITION" ctl add hp0 $a
check "  ... naming the step and the device in the way" \
  sh -c "grep -q 'AddDevice hp0: open the IOMMU group' /tmp/ctl.out && grep -q 'not viable' /tmp/ctl.out && grep -q '$b (bound to uio_pci_generic)' /tmp/ctl.out"
check "  ... every step undone: no VFIO fd left open" \
  sh -c "ls -l /proc/$pid/fd | grep -q /dev/kvm && ! ls -l /proc/$pid/fd | grep -q /dev/vfio"
check "  ... resources as before, nothing listed" \
  sh -c "test \"\$(vmmctl --socket=$SOCK get | sed -n 's/^resources //p' | sed 's/, heap [0-9]* KiB//; s/, threads [0-9]*//')\" = '$base' && ! vmmctl --socket=$SOCK devices | grep -q hp0"

check "$b handed to vfio-pci as well" bind $b vfio-pci
expect_rc 0 "AddDevice once the group is viable" ctl add hp0 $a
check "  ... listed" sh -c "vmmctl --socket=$SOCK devices | grep -q hp0"
expect_rc 0 "forced shutdown" ctl shutdown --force
wait $pid
check "vmm exits 0 (rc=$?)" test $? -eq 0
finish
