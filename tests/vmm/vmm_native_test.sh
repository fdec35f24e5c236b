#!/usr/bin/env bash
# vmm on this machine's /dev/kvm with tiny ELF "kernels" (no Linux needed): console output,
# power-off through the ACPI sleep control register, a triple fault, bad flags, and the gRPC
# control plane driven by vmmctl (get, pause, resume, shutdown, the specified refusals), signals,
# a console reader that stalls or goes away, a guest that restarts through the reset vector.
set -uo pipefail
vmm=$1
make_elf="python3 $2"
vmmctl=$3
. "$4"
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
check() { if "${@:2}"; then echo "PASS $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi; }

[ -w /dev/kvm ] || skip_test "/dev/kvm is not usable here"

# Sanitized builds (tools/test's asan and tsan passes). LeakSanitizer's check at exit starts a
# tracer (clone, then ptrace of every thread), which a confined vmm may not do: its seccomp
# filters refuse both, and it holds no CAP_SYS_PTRACE. vmm's code is leak-checked by its unit
# tests, which run unconfined; here the exit check is off (the last setting wins).
if [ -n "${ASAN_OPTIONS:-}" ]; then
  export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
fi

# Prints "hi\n" on COM1, then writes S5 | SLP_EN to the sleep control register (port 0x3b0).
#   mov dx,0x3f8; mov al,'h'; out; mov al,'i'; out; mov al,'\n'; out;
#   mov dx,0x3b0; mov al,0x34; out; hlt; jmp $
$make_elf "$tmp/hello.elf" 66baf803b068eeb069eeb00aee66bab003b034eef4ebfe
out=$("$vmm" --kernel="$tmp/hello.elf" --memory=64 --serial=stdio 2>"$tmp/hello.err" </dev/null)
rc=$?
echo "console: $out"; cat "$tmp/hello.err"
check "guest output reaches the console" test "$out" = "hi"
check "ACPI power-off: exit status 0 (rc=$rc)" test "$rc" -eq 0
check "power-off is logged" grep -q "guest powered off" "$tmp/hello.err"

"$vmm" --kernel="$tmp/hello.elf" --memory=64 --serial=file:"$tmp/console.txt" </dev/null 2>/dev/null
check "--serial=file: writes the console to the file" test "$(cat "$tmp/console.txt")" = "hi"
out=$("$vmm" --kernel="$tmp/hello.elf" --memory=64 --serial=none </dev/null 2>/dev/null)
check "--serial=none: no console output" test -z "$out"

# --serial=file: refuses what it must not write or truncate: a symlink, the kernel, a FIFO.
ln -sf "$tmp/console.txt" "$tmp/console.link"
mkfifo "$tmp/console.fifo"
for target in "$tmp/console.link" "$tmp/hello.elf" "$tmp/console.fifo"; do
  timeout 10 "$vmm" --kernel="$tmp/hello.elf" --memory=64 --serial=file:"$target" \
    </dev/null >/dev/null 2>"$tmp/serial.err"
  rc=$?
  check "--serial=file:$(basename "$target") refused: exit 2 (rc=$rc): $(cat "$tmp/serial.err")" \
    test "$rc" -eq 2
done
check "the refused kernel is intact" test "$(stat -c %s "$tmp/hello.elf")" -gt 100
check "the symlink's target was not truncated" test "$(cat "$tmp/console.txt")" = "hi"

# What Linux does to reboot on a stock command line (no reboot=k): it jumps to the BIOS entry
# f000:fff0 (in real mode). This guest jumps there from long mode: mov eax,0xffff0; jmp rax.
$make_elf "$tmp/restart.elf" b8f0ff0f00ffe0
timeout 20 "$vmm" --kernel="$tmp/restart.elf" --memory=64 --serial=none </dev/null 2>"$tmp/restart.err"
rc=$?
cat "$tmp/restart.err"
check "a jump to the reset vector resets the machine: exit 0 (rc=$rc)" test "$rc" -eq 0
check "the reset is logged as the guest's" grep -q "guest reset" "$tmp/restart.err"

# A guest that prints without end: mov dx,0x3f8; l: mov al,'x'; out dx,al; jmp l.
$make_elf "$tmp/spam.elf" 66baf803b078eeebfb
# The console's reader goes away: no SIGPIPE death; the VM runs on until SIGTERM.
timeout --preserve-status -s TERM 3 "$vmm" --kernel="$tmp/spam.elf" --memory=64 2>"$tmp/spam.err" </dev/null |
  head -c 100 >/dev/null
rc=${PIPESTATUS[0]}
check "a console reader that goes away does not kill vmm: SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
# The reader stalls (never reads): the vCPU never waits for it, and SIGTERM still ends vmm.
mkfifo "$tmp/stall.fifo"
sleep 60 <"$tmp/stall.fifo" &
staller=$!
"$vmm" --kernel="$tmp/spam.elf" --memory=64 >"$tmp/stall.fifo" 2>"$tmp/stall.err" </dev/null &
vmm_pid=$!
sleep 2
kill -TERM $vmm_pid
for i in $(seq 1 100); do kill -0 $vmm_pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $vmm_pid 2>/dev/null; then
  check "a stalled console reader: vmm ends on SIGTERM within 10 s" false
  kill -KILL $vmm_pid
fi
wait $vmm_pid
rc=$?
kill $staller 2>/dev/null
cat "$tmp/stall.err"
check "a stalled console reader: SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
check "a stalled console reader: the dropped output is counted" grep -q "bytes of console output were dropped" "$tmp/stall.err"

# ud2 with no usable IDT: #UD, #GP/#NP, double fault, triple fault.
$make_elf "$tmp/fault.elf" 0f0b
"$vmm" --kernel="$tmp/fault.elf" --memory=64 --serial=none </dev/null 2>"$tmp/fault.err"
rc=$?
cat "$tmp/fault.err"
check "triple fault: exit status 3 (rc=$rc)" test "$rc" -eq 3
check "triple fault: the reason and the registers are shown" \
  grep -q "triple fault: rip=0x1000000" "$tmp/fault.err"

# Bad input: one line, exit status 2, nothing started.
for args in "--kernel=/nonexistent" "--kernel=$tmp/hello.elf --memory=12" \
            "--kernel=$tmp/hello.elf --cpus=0" "--kernel=$tmp/hello.elf --serial=bogus" \
            "--kernel=$tmp/hello.elf --device vfio-pci,host=00:33.0" \
            "--kernel=$tmp/hello.elf --device=vfio-pci" "--kernel=$tmp/hello.elf --device"; do
  # shellcheck disable=SC2086
  "$vmm" $args </dev/null >"$tmp/bad.out" 2>"$tmp/bad.err"
  rc=$?
  check "bad input ($args): exit 2, one line (rc=$rc)" \
    test "$rc" -eq 2 -a "$(wc -l < "$tmp/bad.err")" -eq 1 -a ! -s "$tmp/bad.out"
done
head -c 130 "$tmp/hello.elf" > "$tmp/cut.elf"  # Inside the code segment.
"$vmm" --kernel="$tmp/cut.elf" </dev/null 2>"$tmp/cut.err"
rc=$?
cat "$tmp/cut.err"
check "truncated ELF: exit 2 naming the problem (rc=$rc)" grep -q "truncated" "$tmp/cut.err"
# A passthrough device on a machine without VFIO (this one): exit 1, saying why, nothing left.
"$vmm" --kernel="$tmp/hello.elf" --device vfio-pci,host=0000:00:03.0 </dev/null 2>"$tmp/vfio.err"
rc=$?
cat "$tmp/vfio.err"
check "--device without VFIO: exit 1 (rc=$rc)" test "$rc" -eq 1
check "--device without VFIO: the error says VFIO is unavailable" \
  grep -q "open the VFIO container: VFIO unavailable" "$tmp/vfio.err"

# The control plane. The guest halts with interrupts off, so it idles until told otherwise.
$make_elf "$tmp/idle.elf" f4ebfd
sock=$(mktemp -u /tmp/vmmkit-native-XXXXXX.sock)  # Short: socket paths have a 107-byte limit.

# --prefault: all 64 MiB of guest RAM resident from the start (the memfd's mapping, by name),
# where without it the idle guest has touched next to nothing.
guest_ram_rss() {  # guest_ram_rss PID: KiB resident in the guest RAM mapping
  awk '/memfd:vmm-guest-ram/ { m = 1; next } /^[0-9a-f]+-/ { m = 0 } m && /^Rss:/ { s += $2 } END { print s + 0 }' \
    "/proc/$1/smaps"
}
for prefault in --prefault --noprefault; do
  "$vmm" --kernel="$tmp/idle.elf" --memory=64 --memory_backing=memfd $prefault --serial=none \
    --api_socket="$sock" </dev/null 2>"$tmp/prefault.err" &
  vmm_pid=$!
  # The API answers while the VM is still being built: wait until the guest runs.
  for i in $(seq 1 100); do
    "$vmmctl" --socket="$sock" --timeout=1s get 2>/dev/null | grep -q 'state     RUNNING' && break
    sleep 0.1
  done
  rss=$(guest_ram_rss $vmm_pid)
  if [ $prefault = --prefault ]; then
    check "--prefault: guest RAM resident from the start ($rss KiB)" test "$rss" -eq 65536
  else
    check "without --prefault: guest RAM faulted in as used ($rss KiB)" test "$rss" -lt 8192
  fi
  "$vmmctl" --socket="$sock" shutdown --force >/dev/null
  wait $vmm_pid
done
# Started with a low soft limit on open files (the hard one stays), which vmm raises.
(ulimit -Sn 256 && exec "$vmm" --kernel="$tmp/idle.elf" --memory=64 --serial=none \
  --api_socket="$sock" </dev/null 2>"$tmp/api.err") &
vmm_pid=$!
for i in $(seq 1 100); do "$vmmctl" --socket="$sock" --timeout=1s health >/dev/null 2>&1 && break; sleep 0.1; done
ctl() { "$vmmctl" --socket="$sock" "$@"; }
check "health: SERVING" test "$(ctl health)" = SERVING
limits=$(awk '/Max open files/ { print $4, $5 }' /proc/$vmm_pid/limits)
check "the open-files soft limit (256 at start) is raised to the hard one ($limits)" \
  test "${limits% *}" = "${limits#* }" -a "${limits% *}" != 256
check "socket mode 0600" test "$(stat -c %a "$sock")" = 600
# Confinement, on by default: every thread has a seccomp filter (mode 2), no_new_privs and no
# capability but CAP_IPC_LOCK (bit 14); one line per thread: name, seccomp mode, nnp, CapEff.
threads=$(for t in /proc/$vmm_pid/task/*; do
  printf '%s %s %s %s\n' "$(cat $t/comm)" "$(awk '/^Seccomp:/ {print $2}' $t/status)" \
    "$(awk '/^NoNewPrivs:/ {print $2}' $t/status)" "$(awk '/^CapEff:/ {print $2}' $t/status)"
done)
echo "$threads"
confined=$threads
if [ -n "${TSAN_OPTIONS:-}" ]; then
  # ThreadSanitizer's runtime starts a thread of its own (named as the process) with a raw clone
  # from the first thread that calls pthread_create: vmm's main thread, before it confines
  # itself as the event loop. No vmm code runs on it, and vmm cannot reach it; in a TSan build
  # one unconfined thread of that name is expected.
  confined=$(echo "$threads" | awk '$1 == "vmm" && $2 == 0 && !seen { seen = 1; next } { print }')
fi
check "every thread is confined: seccomp 2, no_new_privs, at most CAP_IPC_LOCK" \
  sh -c "echo '$confined' | awk '\$2 != 2 || \$3 != 1 || (\$4 != \"0000000000004000\" && \$4 != \"0000000000000000\") { bad = 1 } END { exit bad }'"
check "threads of each kind: vcpu0, the event loop (vmm), api-accept" \
  sh -c "echo '$threads' | grep -q '^vcpu0 ' && echo '$threads' | grep -q '^vmm ' && echo '$threads' | grep -q '^api-accept '"
check "get: RUNNING, 64 MiB" sh -c "\"$vmmctl\" --socket=$sock get | grep -q 'state     RUNNING' &&
  \"$vmmctl\" --socket=$sock get | grep -q 'memory    64 MiB'"
check "pause" test "$(ctl pause)" = "state PAUSED"
ctl pause 2>"$tmp/pause2.err"; rc=$?
check "pause while paused: exit 4, FAILED_PRECONDITION (rc=$rc)" \
  sh -c "test $rc -eq 4 && grep -q FAILED_PRECONDITION $tmp/pause2.err"
check "get: PAUSED" sh -c "\"$vmmctl\" --socket=$sock get | grep -q 'state     PAUSED'"
check "resume" test "$(ctl resume)" = "state RUNNING"
ctl resume 2>/dev/null; rc=$?
check "resume while running: exit 4 (rc=$rc)" test "$rc" -eq 4
check "--json get" sh -c "\"$vmmctl\" --socket=$sock --json get | grep -q '\"state\": \"VM_STATE_RUNNING\"'"
check "devices lists com1" sh -c "\"$vmmctl\" --socket=$sock devices | grep -q com1"
# Graceful: the power button is pressed (this guest ignores it); pressing again is refused.
ctl shutdown --grace=60s >/dev/null; rc=$?
check "graceful shutdown: accepted, the power button pressed (rc=$rc)" test "$rc" -eq 0
ctl shutdown --grace=60s 2>"$tmp/graceful.err"; rc=$?
check "graceful shutdown twice: exit 4, already in progress (rc=$rc)" \
  sh -c "test $rc -eq 4 && grep -q 'already in progress' $tmp/graceful.err"
"$vmm" --kernel="$tmp/idle.elf" --memory=64 --serial=none --api_socket="$sock" \
  </dev/null >/dev/null 2>"$tmp/second.err"; rc=$?
check "a second vmm on the same socket is refused (rc=$rc)" \
  sh -c "test $rc -ne 0 && grep -q 'another server' $tmp/second.err"
ctl add boot-timer 0000:00:03.0 >/dev/null 2>"$tmp/reserved.err"; rc=$?
check "add with the boot timer's id: refused, in use (rc=$rc)" \
  sh -c "test $rc -ne 0 && grep -q 'id boot-timer is in use' $tmp/reserved.err"
ctl remove boot-timer >/dev/null 2>"$tmp/reserved.err"; rc=$?
check "remove the boot timer: refused, part of the platform (rc=$rc)" \
  sh -c "test $rc -eq 4 && grep -q 'part of the platform' $tmp/reserved.err"
check "the VM kept running through the bad requests" \
  sh -c "\"$vmmctl\" --socket=$sock get | grep -q 'state     RUNNING'"
check "shutdown --force" test "$(ctl shutdown --force)" = "state STOPPING"
wait "$vmm_pid"; rc=$?
cat "$tmp/api.err"
check "vmm exits 0 after a forced shutdown (rc=$rc)" test "$rc" -eq 0
check "the socket file is removed" test ! -e "$sock"
ctl get 2>/dev/null; rc=$?
check "vmmctl against no server: exit 3 (rc=$rc)" test "$rc" -eq 3

# SIGTERM and SIGINT with the API on (gRPC's threads started before the VM was built): exit 0
# and the socket removed, as without it. Started from this non-interactive shell, vmm inherits
# SIGINT ignored, as any background job does.
for sig in TERM INT; do
  "$vmm" --kernel="$tmp/idle.elf" --memory=64 --serial=none --api_socket="$sock" \
    </dev/null 2>"$tmp/sig.err" &
  vmm_pid=$!
  for i in $(seq 1 100); do ctl --timeout=1s health >/dev/null 2>&1 && break; sleep 0.1; done
  kill -$sig $vmm_pid
  for i in $(seq 1 100); do kill -0 $vmm_pid 2>/dev/null || break; sleep 0.1; done
  kill -KILL $vmm_pid 2>/dev/null && echo "vmm ignored SIG$sig"
  wait $vmm_pid; rc=$?
  cat "$tmp/sig.err"
  check "SIG$sig with the API on: exit 0 (rc=$rc)" test "$rc" -eq 0
  check "SIG$sig with the API on: the socket file is removed" test ! -e "$sock"
done

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
