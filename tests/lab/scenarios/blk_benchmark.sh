# virtio-blk benchmark (prints numbers; a run that fails to produce them fails, a slow one does
# not): fio in an L2 guest on a 256 MiB raw data disk (/dev/vdb, random content, direct I/O),
# 4 KiB random reads at queue depth 1 and 32, 1 MiB sequential reads and writes; the same guest,
# kernel, images and vCPUs under vmm and under QEMU's virtio-blk-pci with aio=io_uring and
# aio=threads, in this one L1, taking turns for ROUNDS rounds. Prints each figure, the median per
# VMM, and vmm's ratio to QEMU's better engine, taken per round (goal >= 1.0).
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2blk.cpio
CMD="console=ttyS0 reboot=k panic=1 quiet root=/dev/vda blkmode=fio"
ROUNDS=${ROUNDS:-3}

# The root disk: busybox, fio and its libraries (at the paths they have in L1), the disk's /init.
. /lab/root_disk.sh
make_root_disk /tmp/root.img 512M /lab/disk_init.sh /lab/bin/mke2fs /lab/bin/fio /lib /lib64 \
  /usr/lib
check "root image made with fio in it" test $? -eq 0
dd if=/dev/urandom of=/tmp/data.img bs=1M count=256 2>/dev/null
check "256 MiB data image" test "$(stat -c %s /tmp/data.img)" -eq $((256 << 20))
warm_l1_ram 1024

run() {  # run NAME LOG COMMAND...: one guest run; its FIO lines go to results.
  name=$1 log=$2; shift 2
  timeout 600 "$@" </dev/null >$log 2>&1
  if grep -q "L2: fio done" $log; then
    sed -n "s/^L2: FIO /$round $name /p" $log | tr -d '\r' >> /tmp/results
    sed -n "s/^L2: FIO /lab: BENCH $name /p" $log | tr -d '\r'
  else
    check "$name produced fio figures" false
    tail -n 30 $log
  fi
}
# /tmp/qemu AIO: the peer (a script, so that timeout can run it). QEMU's default cache mode,
# writeback, is vmm's: the host's page cache, flushes as fdatasync.
cat > /tmp/qemu <<QEMU
#!/bin/sh
exec qemu-system-x86_64 -L /usr/share/qemu -L /usr/share/seabios -M q35 -accel kvm -cpu host \\
  -m 512 -smp 2 -display none -nodefaults -serial stdio -no-reboot \\
  -kernel $K -initrd $I -append "$CMD" \\
  -drive file=/tmp/root.img,if=none,id=root,format=raw,aio=\$1 -device virtio-blk-pci,drive=root \\
  -drive file=/tmp/data.img,if=none,id=data,format=raw,aio=\$1 \\
  -device virtio-blk-pci,drive=data,num-queues=2
QEMU
chmod +x /tmp/qemu
: > /tmp/results
for round in $(seq 1 $ROUNDS); do
  run vmm /tmp/vmm.$round.log vmm --kernel=$K --initrd=$I --memory=512 --cpus=2 --cmdline="$CMD" \
    --disk path=/tmp/root.img --disk path=/tmp/data.img,queues=2
  run qemu-io_uring /tmp/qu.$round.log /tmp/qemu io_uring
  run qemu-threads /tmp/qt.$round.log /tmp/qemu threads
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# fig ROUND VMM JOB: one figure (IOPS for 4 KiB jobs, KiB/s for 1 MiB ones).
fig() {
  case $3 in *-1m) f=7 ;; *) f=5 ;; esac
  awk -v r=$1 -v v=$2 -v j=$3 -v f=$f '$1 == r && $2 == v && $3 == j { print $f }' /tmp/results
}
# This machine drifts between rounds (everything slows or speeds up together), so the ratio is
# taken within each round, against QEMU's better engine in that round, and its median reported.
echo "lab: BENCH medians of $ROUNDS rounds (IOPS for 4 KiB random reads, MiB/s for 1 MiB);"
echo "lab: BENCH ratio: vmm / QEMU's better engine, per round, then the median of those"
printf 'lab: BENCH %-18s %10s %14s %14s %8s  %s\n' job vmm qemu-io_uring qemu-threads ratio \
  "per round"
for j in randread-4k-qd1 randread-4k-qd32 read-1m write-1m; do
  ratios="" a="" b="" c=""
  for round in $(seq 1 $ROUNDS); do
    x=$(fig $round vmm $j) y=$(fig $round qemu-io_uring $j) z=$(fig $round qemu-threads $j)
    check "$j round $round: every VMM has a figure" test -n "$x" -a -n "$y" -a -n "$z"
    a="$a $x" b="$b $y" c="$c $z"
    # (busybox awk: no ?: here, it prints nothing with one.)
    ratios="$ratios $(awk -v x="$x" -v y="$y" -v z="$z" 'BEGIN {
      best = y + 0; if (z + 0 > best) best = z + 0
      r = 0; if (best > 0) r = x / best
      printf "%.2f", r }')"
  done
  awk -v j=$j -v a="$(echo $a | tr ' ' '\n' | median)" -v b="$(echo $b | tr ' ' '\n' | median)" \
    -v c="$(echo $c | tr ' ' '\n' | median)" -v r="$(echo $ratios | tr ' ' '\n' | median)" \
    -v all="$ratios" 'BEGIN {
    s = 1; if (j ~ /-1m$/) s = 1024
    printf "lab: BENCH %-18s %10.1f %14.1f %14.1f %8.2f %s\n", j, a / s, b / s, c / s, r, all }'
done
finish
