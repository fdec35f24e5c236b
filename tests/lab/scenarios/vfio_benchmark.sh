# vfio/ DMA mapping benchmark on L1's emulated VT-d (see tests/lab/vfio/dma_bench.cc).
. /lab/lib.sh
edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -n1)
edu=${edu%/device}
echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id
group=$(basename "$(readlink "$edu/iommu_group")")
for i in $(seq 1 50); do [ -c "/dev/vfio/$group" ] && break; usleep 100000; done
check "dma_bench" dma_bench "$(basename "$edu")"
finish
