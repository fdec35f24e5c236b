# Masking and unmasking one MSI vector of edu (vfio-pci) under L1's KVM, the two ways: the irqfd
# unbound and bound again, or VFIO pointed at another eventfd and back (see
# tests/lab/passthrough/msi_mask_bench.cc). Three runs of the binary, each with the ratio. Prints
# numbers; fails only if a run fails.
. /lab/lib.sh
edu_to_vfio
for run in 1 2 3; do
  EDU_BDF=$bdf msi_mask_bench --benchmark_min_time=0.3 >/tmp/bench.out 2>&1
  check "msi_mask_bench run $run" grep -q "ratio BM_MaskUnmask" /tmp/bench.out || cat /tmp/bench.out
  grep -E "^BM_|ratio" /tmp/bench.out | sed "s/^/lab: BENCH run $run: /"
done
finish
