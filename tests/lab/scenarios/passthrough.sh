# vfio-pci passthrough and the control plane, end to end: L1's edu (behind a PCIe root port, so it
# can be reset) is measured in L1 directly, then bound to vfio-pci and given to an L2 Linux guest
# by vmm --device; the guest's checks (sysfs BAR0, DMA, INTx via uio_pci_generic, MSI via the
# edu_msi test driver) run from its /init (l2/passthrough_init.sh). Meanwhile vmmctl drives the
# VM: health, get, devices, pause/resume, and a bad-request matrix; the VM keeps running
# through it, and a forced shutdown ends it. That first vmm runs unprivileged, as user "vmm"
# (uid 1000) given /dev/kvm, the group's node and a memlock limit. Then the same guest once more
# with --irqchip=split.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2pt.cpio
SOCK=/tmp/vmm.sock
ctl() { vmmctl --socket=$SOCK "$@"; }

edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -1 | sed 's|/device$||')
bdf=$(basename "$edu")
echo "lab: edu at $bdf"

# The peer: the same guest program on the device directly in L1 (iommu=pt: physical addresses
# are bus addresses for a device without a driver).
edu_guest probe
edu_guest dma 20 | tee /tmp/l1dma.log
edu_guest mmio 2000000 | tee -a /tmp/l1dma.log
l1_rate=$(sed -n 's/.*: \([0-9]*\) roundtrips\/s/\1/p' /tmp/l1dma.log)
l1_mmio=$(sed -n 's/.*: \([0-9]*\) reads\/s/\1/p' /tmp/l1dma.log)

edu_to_vfio
check "edu bound to vfio-pci (group $group)" test -c "/dev/vfio/$group"

# What an unprivileged vmm is given (README, "Confinement and running unprivileged"): /dev/kvm
# and the device's group node, read access to its images, and a locked-memory limit covering
# guest RAM for VFIO's pinning (raised here, as root; su keeps it).
mkdir -p /etc
echo "vmm:x:1000:1000:vmm:/tmp:/bin/sh" >> /etc/passwd
echo "vmm:x:1000:" >> /etc/group
chown 1000:1000 /dev/kvm "/dev/vfio/$group"
ulimit -l unlimited
as_vmm_user() {  # as_vmm_user VMM_ARGS...: runs vmm as user "vmm"; in the background only (it
  # execs, so that $! is vmm's pid).
  # (busybox su reads options anywhere before "--": then the user, $0 and vmm's arguments.)
  exec su -s /bin/sh -c 'exec /lab/bin/vmm "$@"' -- vmm vmm "$@"
}

start_l2() {  # start_l2 LOG [VMM_ARGS...]: boots the guest, waits for its checks; sets $pid.
  # $VMM_CMD, when set, runs vmm (as_vmm_user).
  local log=$1
  shift
  ${VMM_CMD:-vmm} --kernel=$K --initrd=$I --memory=256 --cmdline="console=ttyS0 reboot=k quiet $CMDLINE_EXTRA" \
    --device vfio-pci,host=$bdf --api_socket=$SOCK "$@" </dev/null >$log 2>&1 &
  pid=$!
  for i in $(seq 1 300); do
    grep -q "L2: passthrough checks done" $log && break
    kill -0 $pid 2>/dev/null || break
    sleep 1
  done
  sed 's/^/  L2| /' $log | grep -v "^  L2| \[" | tail -n 30
  for c in "edu is on the guest's PCI bus" "BAR0 mmapped through sysfs: ID and liveness registers" \
    "DMA roundtrips RAM -> edu -> RAM, data verified" "BAR0 reads through the KVM slot" \
    "INTx: 20 interrupts through uio_pci_generic" \
    "MSI: edu_msi bound with an MSI vector" "MSI: 20 raised interrupts counted in /proc/interrupts" \
    "MSI: the vector is PCI-MSI (not INTx)" "RTC: 3 update interrupts through /dev/rtc0" \
    "RTC: they were the hardware's IRQ 8 (/proc/interrupts)"; do
    check "L2${*:+ $*}: $c" grep -qF "L2: PASS $c" $log
  done
}
confined() {  # confined PID KIND...: every thread has a seccomp filter, no_new_privs and no
  # capability but CAP_IPC_LOCK (bit 14), and a thread of each KIND (its comm) is there.
  local pid=$1 t bad=0
  shift
  for t in /proc/$pid/task/*; do
    grep -q '^Seccomp:[[:space:]]*2$' $t/status && grep -q '^NoNewPrivs:[[:space:]]*1$' $t/status &&
      grep -Eq '^CapEff:[[:space:]]*0000000000004000$|^CapEff:[[:space:]]*0000000000000000$' \
        $t/status || { echo "  not confined: $(cat $t/comm) $(grep -E '^(Seccomp|NoNewPrivs|CapEff):' $t/status | tr '\n' ' ')"; bad=1; }
  done
  for t in "$@"; do cat /proc/$pid/task/*/comm | grep -qx "$t" || { echo "  no $t thread"; bad=1; }; done
  return $bad
}
power_button() {  # power_button LOG: a graceful shutdown presses the guest's power button.
  expect_rc 0 "graceful shutdown: the power button is pressed" ctl shutdown --grace=60s
  for i in $(seq 1 20); do grep -q "L2: power button pressed" $1 && break; sleep 1; done
  check "the guest saw the power button press" grep -q "L2: power button pressed" $1
}

VMM_CMD=as_vmm_user
start_l2 /tmp/l2.log
VMM_CMD=
check "vmm runs as the unprivileged user vmm (uid 1000) with no capabilities" \
  sh -c "grep -q '^Uid:[[:space:]]*1000[[:space:]]' /proc/$pid/status &&
    grep -q '^CapEff:[[:space:]]*0000000000000000$' /proc/$pid/status"
check "every vmm thread is confined by default ($(ls /proc/$pid/task | wc -l) threads): seccomp, no_new_privs, only CAP_IPC_LOCK" \
  confined $pid vcpu0 vmm api-accept
check "with the in-kernel irqchip the guest finds KVM's IOAPIC (version 0x11)" \
  grep -q "L2: IOAPIC.0.: apic_id 1, version 17" /tmp/l2.log
l2_rate=$(sed -n 's/.*: \([0-9]*\) roundtrips\/s/\1/p' /tmp/l2.log | head -1)
l2_mmio=$(sed -n 's/.*: \([0-9]*\) reads\/s/\1/p' /tmp/l2.log | head -1)

# vmm's own memory with the guest up and edu attached: every mapping except guest RAM.
awk -v guest_kib=$((256 * 1024)) '/^[0-9a-f]+-[0-9a-f]+ / { guest = 0 }
     /^Size:/ { guest = ($2 == guest_kib) }
     /^Rss:/ { if (guest) g += $2; else o += $2 }
     END { printf "lab: BENCH vmm RSS after L2 boot with API and passthrough: %d KiB outside guest memory (guest RAM resident: %d KiB; Firecracker: <= 5120)\n", o, g }' \
  /proc/$pid/smaps
# Where it goes: the largest mappings (guest RAM excluded).
awk -v guest_kib=$((256 * 1024)) '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6) }
     /^Size:/ { guest = ($2 == guest_kib) }
     /^Rss:/ { if (!guest) rss[name] += $2 }
     END { for (n in rss) printf "%d %s\n", rss[n], n }' /proc/$pid/smaps | sort -rn | head -n 6 |
  while read kib name; do echo "lab:   RSS $kib KiB $name"; done
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
echo "lab: BENCH edu DMA roundtrips/s (2 KiB each way; edu finishes a DMA on a 100 ms timer): L2 through passthrough ${l2_rate:-?}, L1 on the device ${l1_rate:-?}, ratio L2/L1 = $(ratio "$l2_rate" "$l1_rate")"
echo "lab: BENCH edu BAR0 reads/s: L2 through passthrough ${l2_mmio:-?}, L1 on the device ${l1_mmio:-?}, ratio L2/L1 = $(ratio "$l2_mmio" "$l1_mmio")"

# The control plane against the running VM.
expect_rc 0 "health answers" ctl health
check "health is SERVING" grep -q SERVING /tmp/ctl.out
expect_rc 0 "get" ctl get
check "get: RUNNING" grep -q RUNNING /tmp/ctl.out
echo "lab: resources with edu driven by L2: $(sed -n 's/^resources //p' /tmp/ctl.out)"
check "get: edu's MSI is a route and its BAR a KVM memory slot beside guest RAM" \
  grep -Eq "msi routes [1-9][0-9]*, .*kvm slots ([2-9]|[1-9][0-9])" /tmp/ctl.out
expect_rc 0 "devices" ctl devices
check "devices: edu passed through as hostdev0 from $bdf" grep -q "hostdev0.*$bdf" /tmp/ctl.out
check "devices: its interrupts are MSI now" grep -q "interrupts: msi" /tmp/ctl.out
expect_rc 0 "device hostdev0" ctl device hostdev0
expect_rc 0 "pause" ctl pause
check "paused: get says PAUSED" sh -c "vmmctl --socket=$SOCK get | grep -q PAUSED"
expect_rc 4 "pause twice: FAILED_PRECONDITION" ctl pause
expect_rc 0 "resume" ctl resume
expect_rc 4 "resume twice: FAILED_PRECONDITION" ctl resume
expect_rc 5 "unknown device id: NOT_FOUND" ctl device nosuch
expect_rc 5 "malformed argument (graceful timeout out of range): INVALID_ARGUMENT" \
  ctl shutdown --grace=11m
expect_rc 2 "malformed command line: usage" ctl pause --now
mkdir -p /etc
echo "nobody:x:65534:65534:nobody:/:/bin/sh" >> /etc/passwd
echo "nogroup:x:65534:" >> /etc/group
expect_rc 7 "a client without permission on the socket is refused" \
  su nobody -s /bin/sh -c "/lab/bin/vmmctl --socket=$SOCK get"
power_button /tmp/l2.log
expect_rc 4 "shutdown twice: FAILED_PRECONDITION" ctl shutdown --grace=60s
check "the VM kept running through all of it" sh -c "vmmctl --socket=$SOCK get | grep -q RUNNING"
expect_rc 0 "forced shutdown" ctl shutdown --force
wait $pid
rc=$?
check "vmm exits 0 after a forced shutdown (rc=$rc)" test "$rc" -eq 0
check "the guest never saw an error from vmm" sh -c '! grep -q "vmm: .*error" /tmp/l2.log'
tail -n 3 /tmp/l2.log

# The same guest on a split irqchip: vmm's own IOAPIC (no PIT, no PIC) carries the console,
# edu's INTx (level-triggered, resampled at the guest's EOI) and the power button's GED
# interrupt; MSIs go straight to KVM's local APICs as before.
start_l2 /tmp/l2split.log --irqchip=split
check "split irqchip: every vmm thread is confined, the IOAPIC's line thread too" \
  confined $pid vcpu0 vmm api-accept ioapic-lines
check "with --irqchip=split the guest finds vmm's IOAPIC (version 0x20)" \
  grep -q "L2: IOAPIC.0.: apic_id 1, version 32" /tmp/l2split.log
check "with no PIT it times with the local APIC's TSC deadline and kvm-clock" \
  grep -q "L2: clockevent lapic-deadline, clocksource kvm-clock" /tmp/l2split.log
power_button /tmp/l2split.log
expect_rc 0 "forced shutdown (split irqchip)" ctl shutdown --force
wait $pid
rc=$?
check "vmm exits 0 (split irqchip, rc=$rc)" test "$rc" -eq 0
check "no error from vmm (split irqchip)" sh -c '! grep -q "vmm: .*error" /tmp/l2split.log'

# And with the VT-d too, which then remaps every interrupt: the console's, the power button's and
# edu's INTx through the IOAPIC's remappable entries (the guest ends each level-triggered one at
# the IOAPIC's EOI register), edu's MSI through its own entry. The guest keeps DMA remapping in
# pass-through (iommu=pt) so that edu_guest's physical addresses stay bus addresses.
CMDLINE_EXTRA=iommu=pt start_l2 /tmp/l2ir.log --irqchip=split --iommu
check "with --iommu too the guest enables interrupt remapping (xAPIC mode)" \
  grep -q "L2: DMAR-IR: Enabled IRQ remapping in xapic mode" /tmp/l2ir.log
check "edu's INTx, the console and the RTC go through remapped IOAPIC entries" \
  sh -c 'grep -q "IR-IO-APIC.*uio_pci_generic" /tmp/l2ir.log && grep -q "IR-IO-APIC.*ttyS0" /tmp/l2ir.log &&
    grep -q "IR-IO-APIC.*rtc0" /tmp/l2ir.log'
power_button /tmp/l2ir.log
expect_rc 0 "forced shutdown (interrupt remapping)" ctl shutdown --force
wait $pid
rc=$?
check "vmm exits 0 (interrupt remapping, rc=$rc)" test "$rc" -eq 0
finish
