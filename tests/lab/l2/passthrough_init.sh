#!/bin/busybox sh
# /init of the L2 guest that vmm gives QEMU's edu device (passed through from L1 with
# --device vfio-pci). It checks the device the way guest software would and reports each
# result on the console as "L2: PASS ..." or "L2: FAIL ...", then idles so that L1 can drive
# the VM over the control plane.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
outb 0x440 123 2>/dev/null  # vmm's boot timer: boot complete.
echo "L2: booted"
# Which IOAPIC the guest found: KVM's reports version 0x11, vmm's own (--irqchip=split) 0x20.
dmesg | grep -o "IOAPIC\[0\]: apic_id [0-9]*, version [0-9]*" | sed 's/^/L2: /'
dmesg | grep -o "DMAR-IR: Enabled IRQ remapping in [a-z0-9]* mode" | sed 's/^/L2: /'
# What the guest times with (no PIT under --irqchip=split: it must not need one).
echo "L2: clockevent $(cat /sys/devices/system/clockevents/clockevent0/current_device 2>/dev/null)," \
  "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)," \
  "timer irq: $(grep -cE '^ *0:.*timer' /proc/interrupts)"
fails=0
check() {  # check DESCRIPTION COMMAND...
  desc=$1; shift
  if "$@"; then echo "L2: PASS $desc"; else echo "L2: FAIL $desc"; fails=$((fails + 1)); fi
}
lspci_edu() { grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -1 | sed 's|/device$||'; }
edu=$(lspci_edu)
echo "L2: edu at ${edu:-nowhere}"
check "edu is on the guest's PCI bus" test -n "$edu"

# BAR0 through sysfs, then DMA into buffers found through /proc/self/pagemap.
check "BAR0 mmapped through sysfs: ID and liveness registers" edu_guest probe
# edu completes each DMA on a 100 ms timer: 20 roundtrips take about 4 s.
check "DMA roundtrips RAM -> edu -> RAM, data verified" edu_guest dma 20
check "BAR0 reads through the KVM slot" edu_guest mmio 2000000

# INTx: uio_pci_generic (a read on /dev/uioN returns once per interrupt).
insmod /modules/uio.ko && insmod /modules/uio_pci_generic.ko
echo "1234 11e8" > /sys/bus/pci/drivers/uio_pci_generic/new_id
for i in $(seq 1 50); do [ -d "$edu/uio" ] && break; usleep 100000; done
echo "L2: edu INTx is IRQ $(cat $edu/irq) (pin/line: $(hexdump -v -e '1/1 "%02x "' -s 0x3d -n 1 $edu/config)/$(hexdump -v -e '1/1 "%02x"' -s 0x3c -n 1 $edu/config))"
check "INTx: 20 interrupts through uio_pci_generic" edu_guest intx 20
grep -E "uio_pci_generic|ttyS0" /proc/interrupts | sed 's/^/L2: /'
echo "$(basename $edu)" > /sys/bus/pci/drivers/uio_pci_generic/unbind
echo "1234 11e8" > /sys/bus/pci/drivers/uio_pci_generic/remove_id

# MSI: the edu_msi test driver; its interrupt count in /proc/interrupts must rise.
insmod /modules/edu_msi.ko
msi_count() { awk '/edu-msi/ { n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print n }' /proc/interrupts; }
check "MSI: edu_msi bound with an MSI vector" grep -q "edu-msi" /proc/interrupts
grep "edu-msi" /proc/interrupts | sed 's/^/L2: /'
before=$(msi_count)
edu_guest raise 20
after=$(msi_count)
echo "L2: edu-msi interrupts before=${before:-none} after=${after:-none}"
check "MSI: 20 raised interrupts counted in /proc/interrupts" \
  test -n "$before" -a -n "$after" -a "$((after - before))" -ge 20
check "MSI: the vector is PCI-MSI (not INTx)" sh -c 'grep edu-msi /proc/interrupts | grep -q MSI'

# The RTC's interrupt (IRQ 8 through the IOAPIC): rtc_cmos bound to the DSDT's RTC, three
# update events read from /dev/rtc0 and counted by /proc/interrupts. Linux makes them with the
# RTC's alarm, one second ahead each time; only the first can be due already when it is set (then
# the kernel reports it without an interrupt), so at least two are the hardware's.
rtc_count() { awk '/rtc0/ { n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print n }' /proc/interrupts; }
rtc_before=$(rtc_count)
check "RTC: 3 update interrupts through /dev/rtc0" edu_guest rtc 3
grep rtc0 /proc/interrupts | sed 's/^/L2: /'
rtc_after=$(rtc_count)
check "RTC: they were the hardware's IRQ 8 (/proc/interrupts)" \
  test -n "$rtc_after" -a "$((rtc_after - ${rtc_before:-0}))" -ge 2

# The ACPI power button (vmm's graceful shutdown presses it): reported, deliberately not obeyed,
# so that L1 can check that a second graceful shutdown is refused while the first is pending.
insmod /modules/evdev.ko; insmod /modules/button.ko
for e in /sys/class/input/event*; do
  grep -q "Power Button" "$e/device/name" 2>/dev/null && pb=/dev/input/$(basename "$e")
done
echo "L2: power button input: ${pb:-none}"
[ -n "$pb" ] && (dd if="$pb" bs=24 count=1 >/dev/null 2>&1 && echo "L2: power button pressed") &

echo "L2: passthrough checks done, $fails failure(s)"
# Idle until the VMM stops us; a power button press is deliberately ignored here (the control
# plane's graceful shutdown then times out or is forced).
while true; do sleep 10; done
