# What tools/demo does, driven by a script instead of a person: the root disk made with
# root_disk.sh's make_root_disk, the guest booted from it with boot_from_disk; at its shell a
# file is written and synced and the guest reboots; vmm boots it again from the same image, the
# file is read back, and the guest powers off, which ends the loop.
. /lab/lib.sh
. /lab/root_disk.sh
check "the demo's root disk is made" make_root_disk /tmp/demo-root.img 256M /lab/disk_init.sh \
  /lab/bin/mke2fs
shells() { grep -c "L2: shell ready" /tmp/demo.log 2>/dev/null || echo 0; }
mkfifo /tmp/console
(
  exec 3>/tmp/console
  for i in $(seq 1 1200); do [ "$(shells)" -ge 1 ] && break; usleep 100000; done
  echo "echo kept across the reboot > /data/note; sync; reboot -f" >&3
  for i in $(seq 1 1200); do [ "$(shells)" -ge 2 ] && break; usleep 100000; done
  echo "cat /data/note; poweroff -f" >&3
  sleep 30  # The guest reads it; the FIFO stays open meanwhile.
) &
writer=$!
boot_from_disk vmm /lab/vmlinuz /lab/l2blk.cpio /tmp/demo-root.img 2 256 </tmp/console \
  >/tmp/demo.log 2>/tmp/demo.err
rc=$?
kill $writer 2>/dev/null
sed 's/^/  L2| /' /tmp/demo.log | grep -E "L2: |kept|vmmkit demo" | head -n 20
check "the guest booted twice from the disk" test "$(shells)" -eq 2
check "vmm booted it again after its reboot" grep -q "booting it again" /tmp/demo.log
check "the file written before the reboot was read back" grep -q "^kept across the reboot" /tmp/demo.log
check "the guest's poweroff ended the demo (status 0)" test "$rc" -eq 0
finish
