#!/bin/busybox sh
# /init of the L2 guest for hotplug behind vmm's VT-d (the second half of scenarios/iommu.sh):
# edu_msi is loaded first, so every time vmm hot-adds edu, Linux (acpiphp) finds it, puts it in
# an IOMMU domain and binds edu_msi, which runs 3 DMA-API roundtrips; this script reports each
# verified run as "L2: verified N". It never runs a hotplug command itself.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
insmod /modules/edu_msi.ko dma_rounds=3
dmesg | grep -q "DMAR-IR: Enabled IRQ remapping" && echo "L2: IRQ remapping on"
echo "L2: ready"
seen=0
while true; do
  n=$(dmesg | grep -c "edu-msi: DMA API: 3 roundtrips verified")
  if [ "$n" -gt "$seen" ]; then seen=$n; echo "L2: verified $n"; fi
  if dmesg | grep -q "edu-msi: DMA API: FAIL"; then echo "L2: DMA FAIL"; dmesg | grep edu-msi; fi
  usleep 200000
done
