#!/bin/busybox sh
# /init of the L2 guest for the vIOMMU benchmark (the same under vmm and under QEMU). With
# l2mode=maplat it binds edu to the guest's vfio-pci and prints vfio_map_latency's figures; with
# l2mode=dmaapi it times edu_msi's DMA-API roundtrips. Then it powers the VM off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mode=$(sed -n 's/.*l2mode=\([a-z]*\).*/\1/p' /proc/cmdline)
uptime_s() { cut -d' ' -f1 /proc/uptime; }
edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -1 | sed 's|/device$||')
echo "L2: booted, mode $mode, edu at ${edu:-nowhere}, DMAR units: $(ls /sys/class/iommu 2>/dev/null)"
case $mode in
  maplat)
    for m in irqbypass vfio; do insmod /modules/$m.ko; done
    insmod /modules/vfio_iommu_type1.ko allow_unsafe_interrupts=1
    for m in vfio_virqfd vfio-pci-core vfio-pci; do insmod /modules/$m.ko; done
    echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id
    for i in $(seq 1 50); do [ -e "$edu/driver" ] && break; usleep 100000; done
    echo 2 > /proc/sys/vm/nr_hugepages
    vfio_map_latency "$(basename "$edu")" 100 | sed 's/^/L2: /'
    ;;
  dmaapi)
    insmod /modules/edu_msi.ko dma_rounds=20
    dmesg | grep "edu-msi: DMA API" | sed 's/^.*edu-msi: /L2: /'
    ;;
esac
echo "L2: bench done at $(uptime_s) s"
poweroff -f
