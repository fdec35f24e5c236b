#!/bin/busybox sh
# /init of the L2 guests the lab boots with vmm. What it does after boot is chosen on the kernel
# command line with l2mode=reboot|poweroff|shell.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
outb 0x440 123 2>/dev/null  # vmm's boot timer (--boot_timer)
echo "L2: booted, cpus=$(grep -c ^processor /proc/cpuinfo), uptime $(cut -d' ' -f1 /proc/uptime)"
# Which local APIC timer the kernel uses: vmm offers TSC-deadline where KVM emulates it.
grep -q "^flags.* tsc_deadline_timer" /proc/cpuinfo && echo "L2: tsc_deadline_timer"
# l2dmesg: print the kernel's log (its timestamps say where the boot's time went) before going on;
# without initcall_debug's "calling" lines (each initcall's "returned" line carries its time).
grep -q "l2dmesg" /proc/cmdline && { echo "L2: dmesg begin"; dmesg | grep -v "calling  "; echo "L2: dmesg end"; }
mode=$(sed -n 's/.*l2mode=\([a-z]*\).*/\1/p' /proc/cmdline)
case "$mode" in
  reboot) echo "L2: rebooting"; reboot -f ;;
  poweroff) echo "L2: powering off"; poweroff -f ;;
  shell) echo "L2: shell ready (leave with: reboot -f)"; exec setsid cttyhack sh ;;
  *) echo "L2: unknown l2mode '$mode'"; exec sh ;;
esac
