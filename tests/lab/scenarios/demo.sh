# tools/demo inside the lab: vmm boots a Linux guest (L2) with a shell on this console.
. /lab/demo.env
echo
echo "vmmkit demo: vmm is booting Linux with $CPUS vCPU(s) inside the lab machine (about 15 s)."
echo "At the guest's shell prompt, type commands; 'reboot -f' ends the demo (Ctrl-A X quits QEMU)."
echo
vmm --kernel=/lab/vmlinuz --initrd=/lab/l2.cpio --cpus="$CPUS" --memory="$MEMORY" \
  --cmdline="console=ttyS0 reboot=k quiet l2mode=shell" --boot_timer
