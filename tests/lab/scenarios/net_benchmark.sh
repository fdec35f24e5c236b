# virtio-net benchmark (prints numbers; a run that fails to produce them fails, a slow one does
# not): iperf3 L2 -> L1 ("tx") and L1 -> L2 ("rx"), one TCP stream each, and 64-byte TCP round
# trips ("rr", p50/p99) between an L2 guest and L1, over a tap with link-local addresses. The same
# guest, kernel and vCPU under vmm (its own data path, and vhost-net) and under QEMU's
# virtio-net-pci (vhost=off, vhost=on), each VM on a tap of its own, configured alike.
#
# This L1 drifts by 2-3x within a minute, so every guest is booted at once and they take turns job
# by job (the order rotating every round) while the others idle. Ratios are taken within a round
# against QEMU with the same data path (vmm's own path against vhost=off, where QEMU's main loop
# moves the packets; vhost-net against vhost=on) and their median over ROUNDS reported; each is
# vmm's speed over QEMU's (throughput over throughput, QEMU's round trip over vmm's): goal >= 1.0.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2netbench.cpio
# 7 rounds of 5000 round trips: with 5 rounds of 2000, the per-round p99 ratio spread 0.80-1.40
# and the medians of three runs 0.97-1.23.
CMD="console=ttyS0 reboot=k panic=1 quiet netsecs=${NETSECS:-5} netrr=${NETRR:-5000}"
ROUNDS=${ROUNDS:-7}
JOBS="tx rx rr"
VMS="vmm-own vmm-vhost qemu-user qemu-vhost"
warm_l1_ram 1536

# Each VM its own tap and /24 (169.254.1N.0, L1 .1, the guest .2), an iperf3 server on L1's
# address; one round-trip echo server for all (the jobs run one at a time).
slot=0
for vm in $VMS; do
  slot=$((slot + 1))
  tunctl -t nbtap$slot >/dev/null
  ip addr add 169.254.1$slot.1/24 dev nbtap$slot
  ip link set nbtap$slot up
  iperf3 -s -B 169.254.1$slot.1 -D
done
ping_pong listen tcp 7000 0 &

start() {  # start VM N: boots the guest in the background (see lib.sh's vm_start)
  vm=$1 tap=nbtap$2 mac=52:54:00:00:00:1$2 cmd="$CMD netaddr=169.254.1$2.2"
  case $vm in
    vmm-*)
      vhost=""
      [ $vm = vmm-vhost ] && vhost=",vhost=on"
      vm_start $vm vmm --kernel=$K --initrd=$I --memory=512 --cpus=1 --cmdline="$cmd" \
        --net tap=$tap,id=net0,mac=$mac$vhost ;;
    qemu-*)
      vhost=off
      [ $vm = qemu-vhost ] && vhost=on
      vm_start $vm qemu-system-x86_64 -L /usr/share/qemu -L /usr/share/seabios -M q35 -accel kvm \
        -cpu host -name bench,debug-threads=on -m 512 -smp 1 -display none -nodefaults \
        -serial stdio -no-reboot -kernel $K -initrd $I -append "$cmd" \
        -netdev tap,id=n0,ifname=$tap,script=no,downscript=no,vhost=$vhost \
        -device virtio-net-pci,netdev=n0,mac=$mac,romfile= ;;  # (No PXE ROM: direct boot.)
  esac
}
# One boot at a time (four at once starve this one-CPU L1 past its watchdog).
slot=0 ready=1
for vm in $VMS; do
  slot=$((slot + 1))
  t0=$(uptime_cs)
  start $vm $slot
  if vm_await $vm "L2: net ready" 300; then
    echo "lab: $vm up and reaching L1 after $(( ($(uptime_cs) - t0) * 10 )) ms"
  else
    check "$vm booted and reached L1" false
    tail -n 30 /tmp/$vm.log
    ready=0
  fi
done

: > /tmp/results
# record ROUND VM JOB CPU: the job's figure from the guest's console.
record() {
  line=$(grep "^L2: NET $3 " /tmp/$2.log | tail -n 1 | tr -d '\r')
  echo "$1 $2 ${line#L2: NET } cpu $4" >> /tmp/results
  echo "lab: BENCH $1 $2 ${line#L2: NET } (CPU ticks: VMM threads, vCPU: $4)"
}
[ $ready -eq 1 ] && vm_take_turns "L2: NET-DONE" 120 record
for vm in $VMS; do
  [ -e /proc/$(cat /tmp/$vm.pid) ] || continue
  echo "quit" > /tmp/in.$vm
  vm_await $vm "L2: net done" 120 || check "$vm powered off" false
done
kill $(jobs -p) 2>/dev/null
wait 2>/dev/null

# fig ROUND VM JOB: the job's figure (Mbit/s for tx and rx, the p50 in microseconds for rr; with
# FIELD=p99 the p99).
fig() {
  awk -v r=$1 -v v=$2 -v j=$3 -v f=${FIELD:-} '$1 == r && $2 == v && $3 == j {
    if (j != "rr") print $5; else if (f == "p99") print $7; else print $5 }' /tmp/results
}
# ratio X Y SENSE: vmm's speed over QEMU's (SENSE up: X / Y, down: Y / X).
ratio() {
  awk -v x="$1" -v y="$2" -v s=$3 'BEGIN { r = 0
    if (s == "up" && y + 0 > 0) r = x / y
    if (s == "down" && x + 0 > 0) r = y / x
    printf "%.2f", r }'
}
echo "lab: BENCH medians of $ROUNDS rounds: tx, rx in Mbit/s (iperf3, receiver); rr p50 and p99 in us"
echo "lab: BENCH ratio = vmm's speed / QEMU's with the same data path (own path : vhost=off,"
echo "lab: BENCH vhost-net : vhost=on), per round, then the median; goal >= 1.0"
# row LABEL VALUE...: one line of the table.
row() { printf "lab: BENCH %-8s" "$1"; shift; printf " %11s" "$@"; echo; }
: > /tmp/table
for f in tx rx rr-p50 rr-p99; do
  j=${f%-*} FIELD=${f#rr-} sense=up
  [ $j = rr ] && sense=down
  cells=""
  for vm in $VMS; do
    vals=""
    for round in $(seq 1 $ROUNDS); do vals="$vals $(FIELD=$FIELD fig $round $vm $j)"; done
    m=$(echo $vals | tr ' ' '\n' | median)
    cells="$cells ${m:--}"
  done
  for pair in vmm-own:qemu-user vmm-vhost:qemu-vhost; do
    ratios=""
    for round in $(seq 1 $ROUNDS); do
      x=$(FIELD=$FIELD fig $round ${pair%:*} $j) y=$(FIELD=$FIELD fig $round ${pair#*:} $j)
      check "$f round $round: ${pair%:*} and ${pair#*:} have a figure" test -n "$x" -a -n "$y"
      ratios="$ratios $(ratio "$x" "$y" $sense)"
    done
    echo "$f ${pair%:*} per-round:$ratios" >> /tmp/ratios
    cells="$cells $(echo $ratios | tr ' ' '\n' | median)"
  done
  row $f $cells >> /tmp/table
done
row figure $VMS ratio-own ratio-vhost
cat /tmp/table
sed 's/^/lab: BENCH per-round ratios /' /tmp/ratios
# CPU per job (all rounds, 1/100 s ticks): the VMM's own threads (vmm's workers, QEMU's main loop
# and the kernel's vhost worker, which is not the VMM's: not counted), and its vCPU threads.
echo "lab: BENCH CPU ticks per job (sum of rounds): VMM threads, vCPU threads"
for j in $JOBS; do
  for vm in $VMS; do
    awk -v v=$vm -v j=$j '$2 == v && $3 == j { o += $(NF - 1); c += $NF }
      END { printf "lab: BENCH %-4s %-11s %6d %6d\n", j, v, o, c }' /tmp/results
  done
done
# KVM's counters per job (all rounds): what each VMM's guest costs its vCPU in exits.
echo "lab: BENCH KVM events per job (sum of rounds): $KVM_STATS"
for j in $JOBS; do
  for vm in $VMS; do
    awk -v v=$vm -v j=$j -v k="$(echo $KVM_STATS | wc -w)" '$1 == v && $2 == j {
        for (i = 1; i <= k; i++) d[i] += $(2 + k + i) - $(2 + i) }
      END { printf "lab: BENCH %-4s %-11s", j, v
            for (i = 1; i <= k; i++) printf " %9d", d[i]
            print "" }' /tmp/kvmstats
  done
done
grep -h "L2: NET guest" /tmp/*.log | sed 's/^/lab: /'
finish
