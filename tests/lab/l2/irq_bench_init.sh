#!/bin/busybox sh
# /init of the L2 guest for the interrupt benchmark (the same under vmm and under QEMU): edu's
# MSI roundtrips timed in the kernel (edu_msi irq_rounds), then its INTx roundtrips through
# uio_pci_generic timed by edu_guest; the figures and whether interrupt remapping is on go to the
# console. Then it powers the VM off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
outb 0x440 123 2>/dev/null  # vmm's boot timer.
n=$(sed -n 's/.*l2rounds=\([0-9]*\).*/\1/p' /proc/cmdline)
edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -1 | sed 's|/device$||')
echo "L2: booted, edu at ${edu:-nowhere}; $(dmesg | grep -o 'Enabled IRQ remapping in [a-z0-9]* mode' || echo 'no IRQ remapping')"
insmod /modules/edu_msi.ko irq_rounds=$n
dmesg | grep "edu-msi: MSI" | sed 's/^.*edu-msi: /L2: /'
rmmod edu_msi
insmod /modules/uio.ko && insmod /modules/uio_pci_generic.ko
echo "1234 11e8" > /sys/bus/pci/drivers/uio_pci_generic/new_id
for i in $(seq 1 50); do [ -d "$edu/uio" ] && break; usleep 100000; done
edu_guest intx $n | sed 's/^edu_guest: OK intx /L2: INTx: /'
echo "L2: bench done"
poweroff -f
