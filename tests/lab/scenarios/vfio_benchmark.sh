# vfio/ DMA mapping benchmark on L1's emulated VT-d (see tests/lab/vfio/dma_bench.cc).
. /lab/lib.sh
edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -n1)
edu=${edu%/device}
echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id
group=$(basename "$(readlink "$edu/iommu_group")")
for i in $(seq 1 50); do [ -c "/dev/vfio/$group" ] && break; usleep 100000; done
# The emulated VT-d's capabilities: CAP bits 34-37 are the superpage sizes (2 MiB, 1 GiB, ...).
for d in /sys/class/iommu/*/intel-iommu; do echo "lab: $(basename "${d%/intel-iommu}"): cap $(cat $d/cap) ecap $(cat $d/ecap)"; done
check "dma_bench" dma_bench "$(basename "$edu")"
finish
