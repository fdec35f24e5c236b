#!/usr/bin/env bash
# vmm on this machine's /dev/kvm with tiny ELF "kernels" (no Linux needed): console output,
# power-off through the ACPI sleep control register, a triple fault, bad flags, and the gRPC
# control plane driven by vmmctl (get, pause, resume, shutdown, the specified refusals).
set -uo pipefail
vmm=$1
make_elf="python3 $2"
vmmctl=$3
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
check() { if "${@:2}"; then echo "PASS $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi; }

if [ ! -w /dev/kvm ]; then echo "SKIP: /dev/kvm is not usable here"; exit 0; fi

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
"$vmm" --kernel="$tmp/idle.elf" --memory=64 --serial=none --api_socket="$sock" \
  </dev/null 2>"$tmp/api.err" &
vmm_pid=$!
for i in $(seq 1 100); do "$vmmctl" --socket="$sock" --timeout=1s health >/dev/null 2>&1 && break; sleep 0.1; done
ctl() { "$vmmctl" --socket="$sock" "$@"; }
check "health: SERVING" test "$(ctl health)" = SERVING
check "socket mode 0600" test "$(stat -c %a "$sock")" = 600
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
check "the VM kept running through the bad requests" \
  sh -c "\"$vmmctl\" --socket=$sock get | grep -q 'state     RUNNING'"
check "shutdown --force" test "$(ctl shutdown --force)" = "state STOPPING"
wait "$vmm_pid"; rc=$?
cat "$tmp/api.err"
check "vmm exits 0 after a forced shutdown (rc=$rc)" test "$rc" -eq 0
check "the socket file is removed" test ! -e "$sock"
ctl get 2>/dev/null; rc=$?
check "vmmctl against no server: exit 3 (rc=$rc)" test "$rc" -eq 3

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
