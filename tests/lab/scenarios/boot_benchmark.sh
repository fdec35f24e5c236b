# Boot benchmark (prints numbers; a failed boot fails it, a slow one does not): boot-to-init
# time of vmm vs QEMU's microvm machine on the same L2 kernel, initramfs, memory and command line,
# in this one L1 boot, median of 3 runs each, and the ratio; then vmm's RSS outside guest memory
# once the guest's init runs.
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
  t=$(boot_time /tmp/vmm.$run.log timeout 180 vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD")
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
