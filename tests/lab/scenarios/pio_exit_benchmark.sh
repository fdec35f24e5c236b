# The PIO-exit benchmark (kvm/vcpu_benchmark.cc) on L1's nested KVM (prints numbers; fails only
# if it cannot run): PIO exits per second through kvm::Vcpu::Run() against a raw KVM_RUN loop on
# the same vCPU, taking turns block by block, and the median of the per-round ratios.
. /lab/lib.sh
/lab/bin/vcpu_benchmark --rounds=${ROUNDS:-200} --exits=${EXITS:-2000} >/tmp/pio.out 2>&1
rc=$?
sed 's/^/lab: BENCH /' /tmp/pio.out
check "vcpu_benchmark ran (exit $rc)" test $rc -eq 0
check "it printed the ratio" grep -q "PIO exits/s (median): .* ratio" /tmp/pio.out
finish
