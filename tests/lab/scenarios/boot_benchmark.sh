# Boot benchmark (prints numbers; a failed boot fails it, a slow one does not): boot-to-init
# time of vmm, with each way of entering the kernel (--kernel_entry: as-is, through the bzImage's
# decompressor in the guest; 64bit and pvh, decompressed by vmm; and the vmlinux extracted once,
# booted through its 64-bit and its PVH entry), vs QEMU's microvm machine (as it comes, and without
# its RTC) on the same L2 kernel, initramfs, memory and command line, in this one L1 boot, taking
# turns, median of 3 runs each, and the ratios; where vmm's time goes (its own phases, from
# --boot_timer, against the guest's own uptime at init); where the guest's goes (initcall_debug);
# then vmm's RSS outside guest memory once the guest's init runs (without and with the API), and
# what it is made of, next to gRPC alone (//vmm:grpc_floor).
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2.cpio
CMD="console=ttyS0 reboot=k quiet l2mode=reboot"
RUNS=3
up() { cut -d' ' -f1 /proc/uptime; }

# boot_time LOG COMMAND...: seconds from launch until the guest's init prints "L2: booted"; then,
# once it has printed $DONE (by default the same line), stops the command (QEMU microvm has no
# i8042, so the guest's reboot would take long to end it).
# Prints "fail" if init never ran.
boot_time() {
  log=$1; shift
  s=$(up)
  "$@" </dev/null >"$log" 2>&1 &
  pid=$!
  t=fail
  while kill -0 $pid 2>/dev/null; do
    if [ "$t" = fail ] && grep -q "L2: booted" "$log"; then
      t=$(awk -v a="$s" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }')
    fi
    if [ "$t" != fail ] && grep -q "${DONE:-L2: booted}" "$log"; then
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

# The vmlinux inside the bzImage, extracted once: booted directly, no decompression at all.
extract_vmlinux $K /tmp/vmlinux
# ENTRY names: as-is, 64bit, pvh on the bzImage; elf and elf-pvh on the extracted vmlinux (its
# 64-bit entry, its PVH entry).
ENTRIES="as-is 64bit pvh elf elf-pvh"
vmm_args() {
  case $1 in
    elf) echo "--kernel=/tmp/vmlinux --kernel_entry=as-is" ;;
    elf-pvh) echo "--kernel=/tmp/vmlinux --kernel_entry=pvh" ;;
    *) echo "--kernel=$K --kernel_entry=$1" ;;
  esac
}
qemu_times=""
for run in $(seq 1 $RUNS); do
  for e in $ENTRIES; do
    t=$(boot_time /tmp/vmm-$e.$run.log timeout 180 vmm $(vmm_args $e) --initrd=$I --memory=256 \
          --cmdline="$CMD" --boot_timer)
    echo "lab: BENCH vmm $e run $run: $t s"
    check "vmm $e run $run booted" test "$t" != fail
    eval "times_$(echo $e | tr -d -)=\"\$times_$(echo $e | tr -d -) $t\""
  done
  # -L: QEMU looks for firmware relative to its executable, which lives in /lab/bin here.
  t=$(boot_time /tmp/qemu.$run.log timeout 300 qemu-system-x86_64 -L /usr/share/qemu -L /usr/share/seabios \
        -M microvm -accel kvm -cpu host \
        -m 256 -smp 1 -nographic -no-reboot -kernel $K -initrd $I -append "$CMD")
  echo "lab: BENCH qemu-microvm run $run: $t s"
  check "qemu run $run booted" test "$t" != fail
  qemu_times="$qemu_times $t"
  # The same without its RTC, whose probe costs this guest seconds under QEMU (the slow-path pass
  # below shows it): a second, stricter peer (vmm's guest has an RTC).
  t=$(boot_time /tmp/qemu-nortc.$run.log timeout 300 qemu-system-x86_64 -L /usr/share/qemu -L /usr/share/seabios \
        -M microvm,rtc=off -accel kvm -cpu host \
        -m 256 -smp 1 -nographic -no-reboot -kernel $K -initrd $I -append "$CMD")
  echo "lab: BENCH qemu-microvm-rtc-off run $run: $t s"
  check "qemu rtc=off run $run booted" test "$t" != fail
  qemunortc_times="$qemunortc_times $t"
done
[ "$LAB_FAILURES" -eq 0 ] || { tail -n 20 /tmp/vmm-*.1.log /tmp/qemu.1.log; finish; exit 1; }
qm=$(echo $qemu_times | median)
qn=$(echo $qemunortc_times | median)
echo "lab: BENCH boot-to-init, median of $RUNS: qemu-system-x86_64 -M microvm $qm s; -M microvm,rtc=off $qn s"
for e in $ENTRIES; do
  vm=$(eval echo \$times_$(echo $e | tr -d -) | median)
  echo "lab: BENCH boot-to-init, median of $RUNS: vmm $e $vm s, ratio vmm/qemu = $(awk -v a=$vm -v b=$qm 'BEGIN { printf "%.3f", a / b }') (goal <= 0.5), vmm/qemu rtc=off = $(awk -v a=$vm -v b=$qn 'BEGIN { printf "%.3f", a / b }')"
done

# Where vmm's boot time goes, per run and as medians: vmm's phases (ms since its main; before
# main, exec, the loader and static initializers, from /proc's clock ticks), the guest's signal at
# its init (port 0x440), and the guest's own uptime then (its clock starts in the kernel, after the
# bzImage's decompressor).
field() {  # field LOG REGEX: the number after REGEX in LOG
  sed -n "s/.*$2 \([0-9.]*\).*/\1/p" "$1" | head -n 1
}
phases="premain machine loaded built entry init uptime"
for e in $ENTRIES; do
for p in $phases; do eval "all_$p=''"; done
for run in $(seq 1 $RUNS); do
  log=/tmp/vmm-$e.$run.log
  premain=$(field $log "process start to main:")
  machine=$(field $log "KVM and RAM")
  loaded=$(field $log "kernel loaded")
  built=$(field $log "devices and vCPUs")
  entry=$(field $log "first vCPU entry")
  init=$(field $log "guest boot time:")
  uptime=$(sed -n 's/.*L2: booted, .*uptime \([0-9.]*\).*/\1/p' $log | head -n 1)
  echo "lab: BENCH vmm $e run $run phases (ms): before main $premain; since main: KVM and RAM $machine, kernel loaded $loaded, devices and vCPUs $built, first vCPU entry $entry, guest's init $init; guest uptime at init $uptime s"
  check "vmm $e run $run reported its phases and the guest its uptime" \
    test -n "$premain" -a -n "$entry" -a -n "$init" -a -n "$uptime"
  for p in $phases; do eval "all_$p=\"\$all_$p \$$p\""; done
done
for p in $phases; do eval "m_$p=\$(echo \$all_$p | median)"; done
echo "lab: BENCH $e phases, median of $RUNS (ms): before main $m_premain; since main: KVM and RAM $m_machine, kernel loaded $m_loaded, devices and vCPUs $m_built, first vCPU entry $m_entry, guest's init $m_init"
awk -v e=$e -v pre=$m_premain -v init=$m_init -v up=$m_uptime -v entry=$m_entry 'BEGIN {
  total = (pre + init) / 1000
  printf "lab: BENCH %s: vmm start to guest init %.2f s, guest uptime at init %.2f s: ratio %.2f (goal <= 1.1); before the guest kernel'"'"'s clock: %.2f s (vmm to first entry %.3f s)\n", e, total, up, total / up, total - up, (pre + entry) / 1000 }'
done

# Where the guest's time goes (issue 26 item 3): one more boot of vmm and of QEMU microvm with the
# kernel's initcall_debug (to the log buffer only: quiet keeps the console, whose every byte is a
# trapped port write, as in the timed runs); init prints the log, timestamps and all. Printed: the
# kernel's milestones, the slowest initcalls and the longest silences between two messages.
DCMD="$CMD l2dmesg initcall_debug log_buf_len=4M"
slow_paths() {  # slow_paths NAME LOG
  sed -n '/L2: dmesg begin/,/L2: dmesg end/p' "$2" | tr -d '\r' >/tmp/dmesg.$1
  echo "lab: BENCH $1 guest milestones (s of uptime):"
  grep -E "tsc: |Calibrating delay|clocksource: Switched|APIC timer|lpj|Freeing unused kernel image|Run /init|Unpacking initramfs|Trying to unpack" /tmp/dmesg.$1 |
    head -n 20 | sed "s/^/lab: BENCH $1   /"
  echo "lab: BENCH $1 slowest initcalls (usecs):"
  sed -n 's/.*initcall \([^ ]*\) returned .* after \([0-9]*\) usecs.*/\2 \1/p' /tmp/dmesg.$1 | sort -rn | head -n 15 |
    sed "s/^/lab: BENCH $1   /"
  # Only initcalls: initcall_debug also times each driver probe, inside its initcall.
  echo "lab: BENCH $1 initcalls in total: $(sed -n 's/.*initcall .* returned .* after \([0-9]*\) usecs.*/\1/p' /tmp/dmesg.$1 | awk '{ s += $1; n++ } END { printf "%d, %.3f s", n, s / 1e6 }')"
  echo "lab: BENCH $1 longest silences in the log (s, then the message that ended it):"
  sed -n 's/^\[ *\([0-9.]*\)\] \(.*\)/\1 \2/p' /tmp/dmesg.$1 |
    awk 'NR > 1 { printf "%.3f %s: %s\n", $1 - prev, $1, substr($0, index($0, " ") + 1) } { prev = $1 }' |
    sort -rn | head -n 15 | cut -c1-160 | sed "s/^/lab: BENCH $1   /"
}
DONE="L2: dmesg end"
t=$(boot_time /tmp/vmm-dmesg.log timeout 300 vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$DCMD")
check "vmm booted with initcall_debug" test "$t" != fail
slow_paths vmm /tmp/vmm-dmesg.log
t=$(boot_time /tmp/qemu-dmesg.log timeout 300 qemu-system-x86_64 -L /usr/share/qemu -L /usr/share/seabios \
      -M microvm -accel kvm -cpu host -m 256 -smp 1 -nographic -no-reboot -kernel $K -initrd $I -append "$DCMD")
check "qemu booted with initcall_debug" test "$t" != fail
slow_paths qemu-microvm /tmp/qemu-dmesg.log

# rss_kib PID: the process's RSS outside guest memory (every mapping but the one of exactly the
# guest's size).
rss_kib() {
  awk -v guest_kib=$((256 * 1024)) '/^[0-9a-f]+-[0-9a-f]+ / { guest = 0 } /^Size:/ { guest = ($2 == guest_kib) }
       /^Rss:/ { if (!guest) o += $2 } END { print o }' /proc/$1/smaps
}
# rss NAME PID: that, the 20 largest mappings and the threads.
rss() {
  echo "lab: BENCH $1 RSS: $(rss_kib $2) KiB outside guest memory"
  awk -v guest_kib=$((256 * 1024)) '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6); range = $1 }
       /^Size:/ { size = $2 } /^Rss:/ { if (size != guest_kib && $2 > 0) printf "%d KiB rss of %d KiB %s %s\n", $2, size, name, range }' \
    /proc/$2/smaps | sort -rn | head -n 20 | sed "s/^/lab: BENCH $1 RSS   /"
  grep -E "^(Threads|VmRSS|RssAnon|RssFile|VmHWM)" /proc/$2/status | sed "s/^/lab: BENCH $1 /"
}

# vmm_at_init LOG ARGS...: starts vmm on the L2 kernel with ARGS, console to LOG, and returns
# once the guest's init runs; its pid in $pid.
vmm_at_init() {
  log=$1; shift
  vmm --kernel=$K --initrd=$I --memory=256 --cmdline="console=ttyS0 quiet l2mode=shell" "$@" \
    </dev/null >"$log" 2>&1 &
  pid=$!
  for i in $(seq 1 300); do grep -q "L2: booted" "$log" && break; usleep 100000; done
}

# vmm's own memory once the guest's init runs, without and with the API, and gRPC alone
# (//vmm:grpc_floor: vmm's API server settings, the same build, nothing of vmm) once it accepts.
vmm_at_init /tmp/rss-noapi.log
rss "vmm without the API" $pid
noapi=$(rss_kib $pid)
kill -TERM $pid
wait $pid
rc=$?
check "vmm without the API exits 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0
grpc_floor /tmp/floor.sock </dev/null >/tmp/floor.log 2>&1 &
fpid=$!
for i in $(seq 1 300); do [ -S /tmp/floor.sock ] && break; usleep 100000; done
sleep 1
rss "grpc_floor (gRPC alone)" $fpid
floor=$(rss_kib $fpid)
kill -TERM $fpid
wait $fpid
frc=$?
check "grpc_floor exits 0 on SIGTERM (rc=$frc)" test "$frc" -eq 0
vmm_at_init /tmp/rss.log --api_socket=/tmp/rss.sock
rss "vmm at guest init with the API" $pid
api=$(rss_kib $pid)
awk -v api=$api -v noapi=$noapi -v floor=$floor 'BEGIN {
  printf "lab: BENCH RSS (KiB): vmm with the API %d, without %d, gRPC alone %d; vmm with the API / gRPC alone %.2f; goal 4096: %.2fx (with the API), %.2fx (without)\n",
    api, noapi, floor, api / floor, api / 4096, noapi / 4096 }'
kill -TERM $pid
wait $pid
rc=$?
check "vmm exits 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0
finish
