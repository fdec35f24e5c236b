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

# start VM: boots the guest in the background, its console input a FIFO (held open by a sleep,
# so that each command's writer closing it is no end of input), its output /tmp/$vm.log.
start() {
  vm=$1 root=/tmp/root.$1.img data=/tmp/data.$1.img
  mkfifo /tmp/in.$vm
  case $vm in
    vmm-*)
      timeout 3000 vmm --kernel=$K --initrd=$I --memory=512 --cpus=2 --cmdline="$CMD" \
        --disk path=$root --disk path=$data,queues=2,engine=${vm#vmm-} \
        </tmp/in.$vm >/tmp/$vm.log 2>&1 & ;;
    qemu-*)
      # QEMU's default cache mode, writeback, is vmm's: the host's page cache, flushes as
      # fdatasync. The topology is vmm's too (one package of two cores; QEMU's default for
      # -smp 2 is two packages).
      timeout 3000 qemu-system-x86_64 -L /usr/share/qemu -L /usr/share/seabios -M q35 \
        -accel kvm -cpu host -name bench,debug-threads=on -m 512 -smp 2,sockets=1,cores=2,threads=1 -display none -nodefaults -serial stdio -no-reboot \
        -kernel $K -initrd $I -append "$CMD" \
        -drive file=$root,if=none,id=root,format=raw,aio=${vm#qemu-} \
        -device virtio-blk-pci,drive=root \
        -drive file=$data,if=none,id=data,format=raw,aio=${vm#qemu-} \
        -device virtio-blk-pci,drive=data,num-queues=2 \
        </tmp/in.$vm >/tmp/$vm.log 2>&1 & ;;
  esac
  echo $! > /tmp/$vm.pid
  sleep 100000 >/tmp/in.$vm &
}
# threadcpu VM: "TID COMM TICKS" for each of the VMM's threads (user + system time, 1/100 s).
# This L1 has one CPU and a job keeps it busy, so a job's figure is in the end the CPU time each
# I/O costs: the VMM's own threads' and the vCPU threads' (the guest's time and KVM's for its
# exits). QEMU names its vCPU threads "CPU N/KVM" (debug-threads=on), vmm "vcpuN".
threadcpu() {
  for t in /proc/$(cat /tmp/$1.pid)/task/*; do
    echo "${t##*/} $(tr ' ' '_' < $t/comm) $(sed 's/.*) //' $t/stat | awk '{ print $12 + $13 }')"
  done
}
# KVM's own counters for a VMM's VM (debugfs sums its vCPUs), to see where the time goes: exits,
# of them MMIO and HLT, wake-ups from HLT, interrupts injected, instructions emulated.
mount -t debugfs none /sys/kernel/debug 2>/dev/null
STATS="exits mmio_exits halt_exits halt_wakeup irq_injections insn_emulation"
kvmstats() {
  d=$(ls -d /sys/kernel/debug/kvm/$(cat /tmp/$1.pid)-* 2>/dev/null | head -n 1)
  for f in $STATS; do cat $d/$f 2>/dev/null || echo 0; done | tr '\n' ' '
}
# await VM PATTERN SECONDS: until the guest's console shows PATTERN; false after SECONDS.
await() {
  n=0
  while ! grep -q "$2" /tmp/$1.log; do
    n=$((n + 1))
    [ $n -gt $(($3 * 5)) ] && return 1
    usleep 200000
  done
}
for vm in $VMS; do start $vm; done
ready=1
for vm in $VMS; do
  if ! await $vm "L2: fio ready" 600; then
    check "$vm booted to fio" false
    tail -n 30 /tmp/$vm.log
    ready=0
  fi
done

: > /tmp/results
seq=0
if [ $ready -eq 1 ]; then
  order=$VMS
  for round in $(seq 1 $ROUNDS); do
    for j in $JOBS; do
      for vm in $order; do
        seq=$((seq + 1)) tag=$(printf %04d $seq)
        threadcpu $vm > /tmp/cpu.before
        before=$(kvmstats $vm)
        echo "job $j $tag" > /tmp/in.$vm
        if await $vm "L2: FIO-DONE $tag" 300; then
          after=$(kvmstats $vm)
          threadcpu $vm > /tmp/cpu.after
          # Ticks by the VMM's own threads, then by its vCPU threads.
          awk -v v=$vm -v j=$j 'NR == FNR { b[$1] = $3; next }
            { d = $3 - b[$1]; if ($2 ~ /^vcpu|^CPU_/) c += d; else o += d }
            END { print v, j, o + 0, c + 0 }' /tmp/cpu.before /tmp/cpu.after >> /tmp/cpu
          line=$(grep "^L2: FIO $j " /tmp/$vm.log | tail -n 1 | tr -d '\r')
          echo "$round $vm ${line#L2: FIO }" >> /tmp/results
          echo "lab: BENCH $round $vm ${line#L2: FIO }"
          echo "$vm $j $before $after" >> /tmp/kvmstats
        else
          check "$vm: $j round $round finished" false
          tail -n 20 /tmp/$vm.log
        fi
      done
    done
    order="$(echo $order | cut -d' ' -f2-) $(echo $order | cut -d' ' -f1)"  # Rotate.
  done
fi
for vm in $VMS; do echo "quit" > /tmp/in.$vm; done
for vm in $VMS; do await $vm "L2: fio done" 120 || check "$vm powered off" false; done
kill $(jobs -p) 2>/dev/null
wait 2>/dev/null

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
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
echo "lab: BENCH KVM events per I/O (all rounds): $STATS"
for j in $JOBS; do
  for vm in $VMS; do
    ios=$(awk -v v=$vm -v j=$j '$2 == v && $3 == j { n += $5 * 6 } END { print n + 0 }' /tmp/results)
    awk -v v=$vm -v j=$j -v ios=$ios -v k="$(echo $STATS | wc -w)" '$1 == v && $2 == j {
        for (i = 1; i <= k; i++) d[i] += $(2 + k + i) - $(2 + i) }
      END { printf "lab: BENCH %-17s %-14s", j, v
            for (i = 1; i <= k; i++) { x = 0; if (ios > 0) x = d[i] / ios; printf " %8.2f", x }
            print "" }' /tmp/kvmstats
  done
done
finish
