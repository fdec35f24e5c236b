# virtio-blk benchmark (prints numbers; a run that fails to produce them fails, a slow one does
# not): fio in L2 guests on a 256 MiB raw data disk (/dev/vdb, random content, direct I/O):
# 4 KiB random reads at queue depth 1 and 32, 1 MiB sequential reads and writes. The same guest,
# kernel, images and vCPUs under vmm (each I/O engine in ENGINES) and under QEMU's virtio-blk-pci
# with aio=io_uring and aio=threads.
#
# This L1 drifts by 2-3x within a minute (TCG under a shared host), so every guest is booted at
# once and they take turns job by job: each job runs in each guest in turn (the order rotating
# every round) while the others idle, so a figure and its peers are minutes apart at most. The
# ratio is taken within a round, against QEMU's better engine, and its median over ROUNDS
# reported (goal >= 1.0).
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2blk.cpio
CMD="console=ttyS0 reboot=k panic=1 quiet root=/dev/vda blkmode=fio"
ROUNDS=${ROUNDS:-5}
ENGINES=${ENGINES:-threads io_uring}
JOBS="randread-4k-qd1 randread-4k-qd32 read-1m write-1m"
VMS=""
for e in $ENGINES; do VMS="$VMS vmm-$e"; done
VMS="$VMS qemu-io_uring qemu-threads"

# Each guest its own images (vmm and QEMU lock what they open): a root disk with busybox, fio and
# its libraries (at the paths they have in L1) and the disk's /init, and a copy of the data.
. /lab/root_disk.sh
dd if=/dev/urandom of=/tmp/data.img bs=1M count=256 2>/dev/null
check "256 MiB data image" test "$(stat -c %s /tmp/data.img)" -eq $((256 << 20))
for vm in $VMS; do
  make_root_disk /tmp/root.$vm.img 512M /lab/disk_init.sh /lab/bin/mke2fs /lab/bin/fio /lib \
    /lib64 /usr/lib
  check "$vm: root image made with fio in it" test $? -eq 0
  cp /tmp/data.img /tmp/data.$vm.img
done
rm /tmp/data.img
warm_l1_ram 1536

# start VM: boots the guest in the background (lib.sh's vm_start).
start() {
  vm=$1 root=/tmp/root.$1.img data=/tmp/data.$1.img
  case $vm in
    vmm-*)
      vm_start $vm vmm --kernel=$K --initrd=$I --memory=512 --cpus=2 --cmdline="$CMD" \
        --disk path=$root --disk path=$data,queues=2,engine=${vm#vmm-} ;;
    qemu-*)
      # QEMU's default cache mode, writeback, is vmm's: the host's page cache, flushes as
      # fdatasync. The topology is vmm's too (one package of two cores; QEMU's default for
      # -smp 2 is two packages).
      vm_start $vm qemu-system-x86_64 -L /usr/share/qemu -L /usr/share/seabios -M q35 \
        -accel kvm -cpu host -name bench,debug-threads=on -m 512 -smp 2,sockets=1,cores=2,threads=1 -display none -nodefaults -serial stdio -no-reboot \
        -kernel $K -initrd $I -append "$CMD" \
        -drive file=$root,if=none,id=root,format=raw,aio=${vm#qemu-} \
        -device virtio-blk-pci,drive=root \
        -drive file=$data,if=none,id=data,format=raw,aio=${vm#qemu-} \
        -device virtio-blk-pci,drive=data,num-queues=2 ;;
  esac
}
# This L1 has one CPU and a job keeps it busy, so a job's figure is in the end the CPU time each
# I/O costs (vm_threadcpu): the VMM's own threads' and the vCPU threads' (the guest's time and
# KVM's for its exits).
for vm in $VMS; do start $vm; done
ready=1
for vm in $VMS; do
  if ! vm_await $vm "L2: fio ready" 600; then
    check "$vm booted to fio" false
    tail -n 30 /tmp/$vm.log
    ready=0
  fi
done

: > /tmp/results
# record ROUND VM JOB CPU: the job's figure from the guest's console, and its CPU ticks (the VMM's
# own threads, then its vCPU threads).
record() {
  echo "$2 $3 $4" >> /tmp/cpu
  line=$(grep "^L2: FIO $3 " /tmp/$2.log | tail -n 1 | tr -d '\r')
  echo "$1 $2 ${line#L2: FIO }" >> /tmp/results
  echo "lab: BENCH $1 $2 ${line#L2: FIO }"
}
[ $ready -eq 1 ] && vm_take_turns "L2: FIO-DONE" 300 record
for vm in $VMS; do echo "quit" > /tmp/in.$vm; done
for vm in $VMS; do vm_await $vm "L2: fio done" 120 || check "$vm powered off" false; done
kill $(jobs -p) 2>/dev/null
wait 2>/dev/null

# fig ROUND VM JOB: one figure (IOPS for 4 KiB jobs, KiB/s for 1 MiB ones).
fig() {
  case $3 in *-1m) f=7 ;; *) f=5 ;; esac
  awk -v r=$1 -v v=$2 -v j=$3 -v f=$f '$1 == r && $2 == v && $3 == j { print $f }' /tmp/results
}
echo "lab: BENCH medians of $ROUNDS rounds (IOPS for 4 KiB random reads, MiB/s for 1 MiB);"
echo "lab: BENCH ratio: vmm (each engine) / QEMU's better engine, per round, then the median"
hdr="job" row=""
for vm in $VMS; do hdr="$hdr $vm"; done
for e in $ENGINES; do hdr="$hdr ratio-$e"; done
echo "lab: BENCH $hdr" | awk '{ printf "%s %s %-17s", $1, $2, $3; for (i = 4; i <= NF; i++) printf " %14s", $i; print "" }'
for j in $JOBS; do
  s=1; case $j in *-1m) s=1024 ;; esac
  row="$j"
  for vm in $VMS; do
    vals=""
    for round in $(seq 1 $ROUNDS); do vals="$vals $(fig $round $vm $j)"; done
    row="$row $(echo $vals | tr ' ' '\n' | median | awk -v s=$s '{ printf "%.1f", $1 / s }')"
  done
  for e in $ENGINES; do
    ratios=""
    for round in $(seq 1 $ROUNDS); do
      x=$(fig $round vmm-$e $j) y=$(fig $round qemu-io_uring $j) z=$(fig $round qemu-threads $j)
      check "$j round $round: vmm-$e and both QEMU engines have a figure" \
        test -n "$x" -a -n "$y" -a -n "$z"
      # (busybox awk: no ?: here, it prints nothing with one.)
      ratios="$ratios $(awk -v x="$x" -v y="$y" -v z="$z" 'BEGIN {
        best = y + 0; if (z + 0 > best) best = z + 0
        r = 0; if (best > 0) r = x / best
        printf "%.2f", r }')"
    done
    row="$row $(echo $ratios | tr ' ' '\n' | median)"
    echo "lab: BENCH $j vmm-$e per-round ratios:$ratios"
  done
  echo "lab: BENCH $row" | awk '{ printf "%s %s %-17s", $1, $2, $3; for (i = 4; i <= NF; i++) printf " %14s", $i; print "" }'
done
# Per I/O, from KVM's counters over every round of a job, against the I/Os fio counted (IOPS over
# ramp and run: about 6 s).
echo "lab: BENCH host CPU per I/O (all rounds), microseconds: the VMM's own threads, its vCPU threads"
for j in $JOBS; do
  for vm in $VMS; do
    ios=$(awk -v v=$vm -v j=$j '$2 == v && $3 == j { n += $5 * 6 } END { print n + 0 }' /tmp/results)
    awk -v v=$vm -v j=$j -v ios=$ios '$1 == v && $2 == j { o += $3; c += $4 }
      END { x = 0; y = 0; if (ios > 0) { x = o * 10000 / ios; y = c * 10000 / ios }
            printf "lab: BENCH %-17s %-14s %8.0f %8.0f\n", j, v, x, y }' /tmp/cpu
  done
done
echo "lab: BENCH KVM events per I/O (all rounds): $KVM_STATS"
for j in $JOBS; do
  for vm in $VMS; do
    ios=$(awk -v v=$vm -v j=$j '$2 == v && $3 == j { n += $5 * 6 } END { print n + 0 }' /tmp/results)
    awk -v v=$vm -v j=$j -v ios=$ios -v k="$(echo $KVM_STATS | wc -w)" '$1 == v && $2 == j {
        for (i = 1; i <= k; i++) d[i] += $(2 + k + i) - $(2 + i) }
      END { printf "lab: BENCH %-17s %-14s", j, v
            for (i = 1; i <= k; i++) { x = 0; if (ios > 0) x = d[i] / ios; printf " %8.2f", x }
            print "" }' /tmp/kvmstats
  done
done
finish
