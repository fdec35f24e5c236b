# vfio/ DMA mapping benchmark on L1's emulated VT-d (see tests/lab/vfio/dma_bench.cc).
. /lab/lib.sh
edu_to_vfio
# Else the "never touched" cases would also time L0 faulting in L1's RAM (see lib.sh).
warm_l1_ram 2400
echo 136 >/proc/sys/vm/nr_hugepages  # 256 MiB of hugetlb pages for dma_bench
# The emulated VT-d's capabilities: CAP bits 34-37 are the superpage sizes (2 MiB, 1 GiB, ...).
for d in /sys/class/iommu/*/intel-iommu; do echo "lab: $(basename "${d%/intel-iommu}"): cap $(cat $d/cap) ecap $(cat $d/ecap)"; done
check "dma_bench" dma_bench "$bdf"
finish
