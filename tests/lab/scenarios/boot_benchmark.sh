# Boot benchmark (prints numbers; a failed boot fails it, a slow one does not): boot-to-init
# time of vmm vs QEMU's microvm machine on the same L2 kernel, initramfs, memory and command line,
# in this one L1 boot, median of 3 runs each, and the ratio; where vmm's time goes (its own
# phases, from --boot_timer, against the guest's own uptime at init); then vmm's RSS outside guest
# memory once the guest's init runs.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2.cpio
CMD="console=ttyS0 reboot=k quiet l2mode=reboot"
RUNS=3
up() { cut -d' ' -f1 /proc/uptime; }

# boot_time LOG COMMAND...: seconds from launch until the guest's init prints "L2: booted"; then
# stops the command (QEMU microvm has no i8042, so the guest's reboot would take long to end it).
# Prints "fail" if init never ran.
boot_time() {
  log=$1; shift
  s=$(up)
  "$@" </dev/null >"$log" 2>&1 &
  pid=$!
  t=fail
  while kill -0 $pid 2>/dev/null; do
    if grep -q "L2: booted" "$log"; then
      t=$(awk -v a="$s" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }')
      kill -TERM $pid 2>/dev/null
      break
    fi
    usleep 100000
  done
  wait $pid
  # The guest may have printed and exited between two polls.
  if [ "$t" = fail ] && grep -q "L2: booted" "$log"; then
    t=$(awk -v a="$s" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }')
  fi
  echo "$t"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

vmm_times=""
qemu_times=""
for run in $(seq 1 $RUNS); do
  t=$(boot_time /tmp/vmm.$run.log timeout 180 vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD" \
        --boot_timer)
  echo "lab: BENCH vmm run $run: $t s"
  check "vmm run $run booted" test "$t" != fail
  vmm_times="$vmm_times $t"
  # -L: QEMU looks for firmware relative to its executable, which lives in /lab/bin here.
  t=$(boot_time /tmp/qemu.$run.log timeout 300 qemu-system-x86_64 -L /usr/share/qemu -L /usr/share/seabios \
        -M microvm -accel kvm -cpu host \
        -m 256 -smp 1 -nographic -no-reboot -kernel $K -initrd $I -append "$CMD")
  echo "lab: BENCH qemu-microvm run $run: $t s"
  check "qemu run $run booted" test "$t" != fail
  qemu_times="$qemu_times $t"
done
[ "$LAB_FAILURES" -eq 0 ] || { tail -n 20 /tmp/vmm.1.log /tmp/qemu.1.log; finish; exit 1; }
vm=$(echo $vmm_times | median)
qm=$(echo $qemu_times | median)
echo "lab: BENCH boot-to-init, median of $RUNS: vmm $vm s, qemu-system-x86_64 -M microvm $qm s"
echo "lab: BENCH ratio vmm/qemu = $(awk -v a=$vm -v b=$qm 'BEGIN { printf "%.3f", a / b }') (goal <= 0.3)"

# Where vmm's boot time goes, per run and as medians: vmm's phases (ms since its main; before
# main, exec, the loader and static initializers, from /proc's clock ticks), the guest's signal at
# its init (port 0x440), and the guest's own uptime then (its clock starts in the kernel, after the
# bzImage's decompressor).
field() {  # field LOG REGEX: the number after REGEX in LOG
  sed -n "s/.*$2 \([0-9.]*\).*/\1/p" "$1" | head -n 1
}
phases="premain machine loaded built entry init uptime"
for p in $phases; do eval "all_$p=''"; done
for run in $(seq 1 $RUNS); do
  log=/tmp/vmm.$run.log
  premain=$(field $log "process start to main:")
  machine=$(field $log "KVM and RAM")
  loaded=$(field $log "kernel loaded")
  built=$(field $log "devices and vCPUs")
  entry=$(field $log "first vCPU entry")
  init=$(field $log "guest boot time:")
  uptime=$(sed -n 's/.*L2: booted, .*uptime \([0-9.]*\).*/\1/p' $log | head -n 1)
  echo "lab: BENCH vmm run $run phases (ms): before main $premain; since main: KVM and RAM $machine, kernel loaded $loaded, devices and vCPUs $built, first vCPU entry $entry, guest's init $init; guest uptime at init $uptime s"
  check "vmm run $run reported its phases and the guest its uptime" \
    test -n "$premain" -a -n "$entry" -a -n "$init" -a -n "$uptime"
  for p in $phases; do eval "all_$p=\"\$all_$p \$$p\""; done
done
for p in $phases; do eval "m_$p=\$(echo \$all_$p | median)"; done
echo "lab: BENCH phases, median of $RUNS (ms): before main $m_premain; since main: KVM and RAM $m_machine, kernel loaded $m_loaded, devices and vCPUs $m_built, first vCPU entry $m_entry, guest's init $m_init"
awk -v pre=$m_premain -v init=$m_init -v up=$m_uptime -v entry=$m_entry 'BEGIN {
  total = (pre + init) / 1000
  printf "lab: BENCH vmm start to guest init %.2f s, guest uptime at init %.2f s: ratio %.2f (goal <= 1.1); before the guest kernel'"'"'s clock: %.2f s (vmm to first entry %.3f s)\n", total, up, total / up, total - up, (pre + entry) / 1000 }'

# vmm's own memory once the guest runs: RSS of every mapping except guest RAM (the one mapping
# of exactly the guest's memory size).
vmm --kernel=$K --initrd=$I --memory=256 --cmdline="console=ttyS0 quiet l2mode=shell" \
  </dev/null >/tmp/rss.log 2>&1 &
pid=$!
for i in $(seq 1 300); do grep -q "L2: booted" /tmp/rss.log && break; usleep 100000; done
awk -v guest_kib=$((256 * 1024)) '/^[0-9a-f]+-[0-9a-f]+ / { guest = 0 }
     /^Size:/ { guest = ($2 == guest_kib) }
     /^Rss:/ { if (guest) g += $2; else o += $2 }
     END { printf "lab: BENCH vmm RSS at guest init: %d KiB outside guest memory (guest RAM resident: %d KiB)\n", o, g }' \
  /proc/$pid/smaps
kill -TERM $pid
wait $pid
rc=$?
check "vmm exits 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0
finish
