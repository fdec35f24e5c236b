#!/bin/busybox sh
# /init of the L2 guest for the hotplug scenario (scenarios/hotplug.sh). Nothing here runs a
# hotplug command: the guest kernel (acpiphp) finds and releases edu on its own. This script only
# watches: every time edu appears it says so (the first two times it also checks the device with
# a DMA roundtrip); every time it goes, it says so. The second time, it also starves its own
# kernel workers for 20 s, so that a removal requested meanwhile times out, and then checks that
# the device still works.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
outb 0x440 123 2>/dev/null
echo "L2: ready"
# hpmode=watch (the benchmark): only report edu coming and going.
mode=$(sed -n 's/.*hpmode=\([a-z]*\).*/\1/p' /proc/cmdline)
n=0
while true; do
  edu_guest wait-present
  n=$((n + 1))
  echo "L2: edu appeared ($n)"
  if [ "$mode" != watch ] && { [ "$n" -eq 1 ] || [ "$n" -eq 2 ]; }; then
    if edu_guest probe >/dev/null && edu_guest dma 2 >/dev/null; then
      echo "L2: PASS edu works after hot-add ($n)"
    else
      echo "L2: FAIL edu after hot-add ($n)"
    fi
  fi
  if [ "$mode" != watch ] && [ "$n" -eq 2 ]; then
    # A guest that does not answer: its kernel workers (acpiphp runs in them) get no CPU for
    # 20 s under a real-time busy loop, so a removal in the meantime times out.
    echo -1 > /proc/sys/kernel/sched_rt_runtime_us
    echo "L2: unresponsive for 20 s"
    edu_guest starve 20 >/dev/null
    echo 950000 > /proc/sys/kernel/sched_rt_runtime_us
    echo "L2: responsive again"
    if edu_guest probe >/dev/null && edu_guest dma 2 >/dev/null; then
      echo "L2: PASS edu still works after the timed-out removal"
    else
      echo "L2: FAIL edu after the timed-out removal"
    fi
  fi
  edu_guest wait-absent
  echo "L2: edu gone ($n)"
done
