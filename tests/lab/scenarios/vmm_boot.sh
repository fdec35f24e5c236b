# vmm boots Debian's cloud kernel as an L2 guest on L1's KVM: 1 and 2 vCPUs, reboot and power
# off make vmm exit 0, the serial console takes input, and a truncated kernel is rejected; and a
# Multiboot kernel made by the project (tests/vmm/multiboot_hello.S), which checks its entry state
# and information and ends vmm through the debug-exit port with a status of its choosing; the same
# Linux entered without its decompressor (--kernel_entry=64bit and pvh). The
# last boot has a stock command line, no reboot=k: Linux then reboots through the BIOS reset
# entry (real mode, f000:fff0), which vmm's reset stub answers. It runs last, so that no other
# nested guest starts in this L1 after a guest has gone through real mode.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2.cpio
# quiet: every console byte is a port-I/O exit, which is slow under nested TCG.
CMD="console=ttyS0 reboot=k quiet"

run_vmm() {  # run_vmm LOG ARGS...: runs vmm with a timeout, console to LOG; returns vmm's status.
  log=$1; shift
  timeout 180 vmm --kernel=$K --initrd=$I --memory=256 --boot_timer "$@" </dev/null >"$log" 2>&1
}

start=$(date +%s)
run_vmm /tmp/boot1.log --cpus=1 --cmdline="$CMD l2mode=reboot l2dmesg"
rc=$?
sed 's/^/  boot1| /' /tmp/boot1.log | tail -n 25
check "1 vCPU: vmm exits 0 when the guest reboots (rc=$rc)" test "$rc" -eq 0
check "1 vCPU: the guest sees 1 CPU" grep -q "L2: booted, cpus=1" /tmp/boot1.log
check "1 vCPU: the guest has the TSC-deadline timer" grep -q "L2: tsc_deadline_timer" /tmp/boot1.log
check "boot timer reported" grep -q "guest boot time" /tmp/boot1.log
# vmm's FADT claims no keyboard controller (its i8042 is only the reset line): probing one cost
# the guest 2.4 s. Its log (l2dmesg) says no PS/2 controller was found and nothing of probing the
# ports directly (what the driver does when the FADT says one is there); reboot=k still works.
check "the guest does not probe an i8042" sh -c '! grep -q "i8042: Probing ports directly" /tmp/boot1.log'
check "the guest's i8042 driver found no controller" grep -q "i8042: PNP: No PS/2 controller found" /tmp/boot1.log
check "the guest's log was printed" grep -q "L2: dmesg end" /tmp/boot1.log
echo "lab: 1-vCPU boot+reboot took $(( $(date +%s) - start )) s"

run_vmm /tmp/boot2.log --cpus=2 --cmdline="$CMD l2mode=poweroff"
rc=$?
sed 's/^/  boot2| /' /tmp/boot2.log | tail -n 15
check "2 vCPUs: vmm exits 0 when the guest powers off (rc=$rc)" test "$rc" -eq 0
check "2 vCPUs: the guest sees 2 CPUs" grep -q "L2: booted, cpus=2" /tmp/boot2.log

# Interactive console: a command typed into vmm's stdin runs in the guest's shell.
mkfifo /tmp/console.in
timeout 180 vmm --kernel=$K --initrd=$I --memory=256 --cmdline="$CMD l2mode=shell" \
  </tmp/console.in >/tmp/shell.log 2>&1 &
vmm_pid=$!
exec 3>/tmp/console.in
for i in $(seq 1 150); do grep -q "L2: shell ready" /tmp/shell.log && break; sleep 1; done
sleep 1
echo 'echo "hello-from-$((6*7))"' >&3
for i in $(seq 1 30); do grep -q "hello-from-42" /tmp/shell.log && break; sleep 1; done
echo 'reboot -f' >&3
wait $vmm_pid
rc=$?
exec 3>&-
sed 's/^/  shell| /' /tmp/shell.log | tail -n 8
check "a command on vmm's stdin ran in the guest shell" grep -q "^hello-from-42" /tmp/shell.log
check "vmm exits 0 after the shell's reboot (rc=$rc)" test "$rc" -eq 0

# A truncated kernel image: one clear line and exit status 2, before anything starts.
head -c 200000 $K > /tmp/truncated
vmm --kernel=/tmp/truncated --initrd=$I >/tmp/trunc.log 2>&1
rc=$?
cat /tmp/trunc.log
check "truncated kernel: exit status 2 (rc=$rc)" test "$rc" -eq 2
check "truncated kernel: the error says so" grep -q "truncated" /tmp/trunc.log
check "truncated kernel: one line" test "$(wc -l < /tmp/trunc.log)" -eq 1

# No decompressor in the guest: vmm decompresses the bzImage's LZ4 payload and enters the vmlinux
# through its 64-bit entry, or through its PVH entry (two vCPUs: the AP comes up after PVH too).
for e in 64bit pvh; do
  run_vmm /tmp/entry-$e.log --cpus=2 --kernel_entry=$e --cmdline="$CMD l2mode=poweroff"
  rc=$?
  sed 's/^/  '$e'| /' /tmp/entry-$e.log | tail -n 6
  check "--kernel_entry=$e: the guest booted with 2 CPUs and powered off (rc=$rc)" \
    sh -c "[ $rc -eq 0 ] && grep -q 'L2: booted, cpus=2' /tmp/entry-$e.log"
done

# Multiboot: 32-bit protected mode, EAX/EBX, the information structure, the module; the verdict
# through the debug-exit port (0x21 -> status 67), or, without --debug_exit, an ACPI power-off.
MB=/lab/multiboot_hello.elf
echo "a module, loaded by vmm" >/tmp/module.txt
timeout 60 vmm --kernel=$MB --initrd=/tmp/module.txt --memory=64 --cmdline="hello multiboot" \
  --debug_exit </dev/null >/tmp/mb.log 2>&1
rc=$?
sed 's/^/  multiboot| /' /tmp/mb.log
check "multiboot: the kernel's checks passed" grep -q "^multiboot: ok, command line: $MB hello multiboot" /tmp/mb.log
check "multiboot: it printed its module" grep -q "^a module, loaded by vmm" /tmp/mb.log
check "multiboot: debug-exit 0x21 ended vmm with status 67 (rc=$rc)" test "$rc" -eq 67
check "multiboot: vmm says why it ended" grep -q "wrote 0x21 to the debug-exit port" /tmp/mb.log
timeout 60 vmm --kernel=$MB --memory=64 </dev/null >/tmp/mb2.log 2>&1
rc=$?
sed 's/^/  multiboot2| /' /tmp/mb2.log
check "multiboot without --debug_exit: the port is absent, the guest powers off (rc=$rc)" \
  test "$rc" -eq 0
check "multiboot without a module: still ok" grep -q "^multiboot: ok" /tmp/mb2.log

# A stock command line: the reboot goes through the BIOS reset entry.
run_vmm /tmp/stock.log --cpus=1 --cmdline="console=ttyS0 quiet l2mode=reboot"
rc=$?
sed 's/^/  stock| /' /tmp/stock.log | tail -n 8
check "stock command line: vmm exits 0 when the guest reboots (rc=$rc)" test "$rc" -eq 0
check "stock command line: the reboot is the guest's reset" grep -q "vmm: guest reset" /tmp/stock.log
finish
