# Many vmm starts in one L1 (each L2 boots and powers off): a stress test of the lab itself,
# which froze within a dozen starts before QEMU was pinned to one host CPU (see lab.py).
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2.cpio
CMD="console=ttyS0 reboot=k quiet"
for n in $(seq 1 24); do
  start=$(date +%s)
  timeout 180 vmm --kernel=$K --initrd=$I --memory=256 --cpus=$((1 + n % 2)) \
    --cmdline="$CMD l2mode=poweroff" </dev/null >/tmp/b.log 2>&1
  echo "lab: start $n rc=$? in $(( $(date +%s) - start )) s"
done
finish
