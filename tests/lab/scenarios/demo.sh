# tools/demo inside the lab: vmm boots a Linux guest (L2) with a shell on this console.
. /lab/demo.env
echo
echo "vmmkit demo: vmm is booting Linux with $CPUS vCPU(s) inside the lab machine (about 15 s),"
echo "its root file system on a virtio-blk disk. At the guest's shell prompt, type commands;"
echo "what you write survives 'reboot -f'; 'poweroff -f' ends the demo (Ctrl-A X quits QEMU)."
echo
. /lab/root_disk.sh
make_root_disk /tmp/demo-root.img 256M /lab/disk_init.sh /lab/bin/mke2fs || exit 1
boot_from_disk vmm /lab/vmlinuz /lab/l2blk.cpio /tmp/demo-root.img "$CPUS" "$MEMORY"
