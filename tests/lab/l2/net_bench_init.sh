#!/bin/busybox sh
# /init of the L2 guest for the network benchmark (scenarios/net_benchmark.sh): loads virtio-net,
# gives eth0 the address netaddr= names (L1 is .1 of its /24; nothing leaves the lab), then runs
# one job per line read from the console ("job NAME SEQ"; "quit" powers off), so that L1 can take
# turns between guests job by job:
#   tx  iperf3 L2 -> L1, one TCP stream    answers "L2: NET tx mbits N"
#   rx  iperf3 L1 -> L2 (-R)               answers "L2: NET rx mbits N"
#   rr  64-byte TCP round trips (ping_pong) answers "L2: NET rr p50 N p99 N" (microseconds)
# then "L2: NET-DONE SEQ". Seconds per iperf3 job: netsecs= (5 by default); round trips per rr
# job: netrr= (2000 by default).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover \
  net_failover virtio_net; do
  insmod /modules/$m.ko || echo "L2: FAIL insmod $m"
done
addr=$(sed -n 's/.*netaddr=\([0-9.]*\).*/\1/p' /proc/cmdline)
secs=$(sed -n 's/.*netsecs=\([0-9]*\).*/\1/p' /proc/cmdline)
secs=${secs:-5}
rr=$(sed -n 's/.*netrr=\([0-9]*\).*/\1/p' /proc/cmdline)
peer=${addr%.*}.1
for i in $(seq 1 600); do [ -e /sys/class/net/eth0 ] && break; usleep 100000; done
if ! ip addr add $addr/24 dev eth0 || ! ip link set eth0 up; then
  echo "L2: FAIL no eth0"
  poweroff -f
fi
ip link set lo up
# iperf3 -f m: the last "receiver" line is the transfer as the receiving end counted it.
iperf() {  # iperf NAME IPERF3-ARGS...
  name=$1; shift
  out=$(iperf3 -c $peer -t $secs -f m "$@" 2>&1)
  mbits=$(echo "$out" | awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") v = $i } END { print v }')
  [ -n "$mbits" ] || echo "$out" | tail -n 5 | sed 's/^/L2: iperf3| /'
  echo "L2: NET $name mbits ${mbits:-0}"
}
for i in $(seq 1 100); do ping -c 1 -W 1 $peer >/dev/null 2>&1 && break; done
# What the guest made of its machine: timekeeping, idle, APIC mode, the NIC's vectors.
echo "L2: NET guest clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)" \
  "cpuidle $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo none)" \
  "x2apic $(grep -c x2apic /proc/cpuinfo) $(dmesg | grep -o 'Switched APIC routing to [a-z ]*' | head -n 1)" \
  "vectors $(grep -c virtio /proc/interrupts) $(grep -E 'virtio' /proc/interrupts | awk '{ print $NF }' | tr '\n' ' ')"
dmesg | grep -i "kvm-guest\|pv \|paravirt\|spinlock\|steal" | sed 's/^/L2: NET guest dmesg /'
echo "L2: net ready $(cat /sys/class/net/eth0/address)"
while read -r cmd name seq; do
  case "$cmd $name" in
    "job tx") iperf tx ;;
    "job rx") iperf rx -R ;;
    "job rr")
      out=$(ping_pong connect $peer 7000 ${rr:-2000} 2>&1)
      echo "$out" | sed -n 's/.*p50 \([0-9]*\) us, p99 \([0-9]*\) us.*/L2: NET rr p50 \1 p99 \2/p'
      echo "$out" | grep -q p50 || echo "L2: FAIL rr: $out" ;;
    quit*) break ;;
    *) echo "L2: FAIL unknown net command '$cmd $name'" ;;
  esac
  echo "L2: NET-DONE $seq"
done
echo "L2: net done"
poweroff -f
