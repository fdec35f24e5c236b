# Tearing down a device's MSI vectors under L1's KVM (Debian's 6.1, nested): iommu_benchmark's
# BM_MsiTeardown, one Disable per vector against MsiRoutes::DisableDevice (one routing-table update),
# with the ratio. This machine's own /dev/kvm runs the same benchmark, but its timings swing too
# much between runs to compare; L1's are steadier. Prints numbers; fails only if the run fails.
. /lab/lib.sh
iommu_benchmark --benchmark_filter=MsiTeardown --benchmark_min_time=0.2 >/tmp/bench.out 2>&1
check "iommu_benchmark ran" grep -q "ratio BM_MsiTeardown" /tmp/bench.out
grep -E "BM_|ratio" /tmp/bench.out | sed 's/^/lab: BENCH /'
finish
