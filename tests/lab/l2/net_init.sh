#!/bin/busybox sh
# /init of the L2 guest for the network scenario (scenarios/virtio_net.sh), in L1's tap network
# (169.254.1.0/24 on the first interface, 169.254.2.0/24 on a hot-added second; L1 is .1, L2 .2;
# nothing leaves the lab). It loads virtio-net and virtio-vsock, brings eth0 up, with
# netmode=vsock exchanges messages with L1 over AF_VSOCK both ways, pings L1, sends L1 netsend=N
# MiB (64 by default) over TCP (tcp_copy; L1 checks the SHA-256 it prints), receives netrecv=N MiB
# (64) from L1 and prints their SHA-256, then,
# with netmode=hotplug, waits for a second interface, pings L1 through it and powers off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover \
  net_failover virtio_net vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport; do
  insmod /modules/$m.ko || echo "L2: FAIL insmod $m"
done
mode=$(sed -n 's/.*netmode=\([a-z]*\).*/\1/p' /proc/cmdline)
# MiB L2 sends (netsend=N, default 64).
send=$(sed -n 's/.*netsend=\([0-9]*\).*/\1/p' /proc/cmdline)
send=${send:-64}
# MiB L2 receives (netrecv=N, default 64).
recv=$(sed -n 's/.*netrecv=\([0-9]*\).*/\1/p' /proc/cmdline)
recv=${recv:-64}
up() {  # up IFACE ADDR: waits for the interface, configures it.
  for i in $(seq 1 600); do [ -e /sys/class/net/$1 ] && break; usleep 100000; done
  ip addr add $2/24 dev $1 && ip link set $1 up
}
if ! up eth0 169.254.1.2; then
  echo "L2: FAIL no eth0"
  ls /sys/class/net | sed 's/^/L2: /'
  poweroff -f
fi
echo "L2: eth0 $(cat /sys/class/net/eth0/address) queues $(ls -d /sys/class/net/eth0/queues/rx-* | wc -l)"
# Feature bit 33, ACCESS_PLATFORM: the driver maps its buffers through the DMA API (behind the
# vIOMMU, a translated domain).
vdev=$(readlink -f /sys/class/net/eth0/device)
echo "L2: eth0 access_platform $(cut -c34 $vdev/features) domain $(cat $vdev/../iommu_group/type 2>/dev/null || echo none)"
echo "L2: ready"
# netmode=vsock: L1 (CID 2) and L2 (CID 3, vmm --vsock cid=3) talk over AF_VSOCK both ways.
# The guest's listener is checked at the end (L1 connects once the transfers are done).
if [ "$mode" = vsock ]; then
  ping_pong listen vsock 1234 1000 &
  vsock_listener=$!
  if ping_pong connect vsock:2 5678 1000 >/tmp/vsock 2>&1; then
    echo "L2: PASS vsock to the host: $(cat /tmp/vsock)"
  else
    echo "L2: FAIL vsock to the host: $(cat /tmp/vsock)"
  fi
fi
if ping -c 3 -W 10 169.254.1.1 >/tmp/ping 2>&1; then
  echo "L2: PASS ping L1"
else
  echo "L2: FAIL ping L1"
  sed 's/^/L2: /' /tmp/ping
fi
dd if=/dev/urandom of=/tmp/out bs=1M count=$send 2>/dev/null
echo "L2: sending $(sha256sum /tmp/out | cut -d' ' -f1)"
tcp_copy send 169.254.1.1 5000 /tmp/out || echo "L2: FAIL sending"
rm /tmp/out
grep -E "virtio[0-9]-(input|output)" /proc/interrupts | tr -s ' ' | sed 's/^/L2: irq /'
echo "L2: sent"
echo "L2: receiving"
tcp_copy receive 5001 /tmp/in | sed 's/^/L2: /'
echo "L2: received $(sha256sum /tmp/in | cut -d' ' -f1)"
rm /tmp/in
if [ "$mode" = hotplug ]; then
  if up eth1 169.254.2.2 && ping -c 3 -W 10 169.254.2.1 >/dev/null 2>&1; then
    echo "L2: PASS ping L1 on the hot-added eth1"
  else
    echo "L2: FAIL hot-added eth1"
  fi
  # L1 removes it now; wait until it is gone.
  for i in $(seq 1 600); do [ -e /sys/class/net/eth1 ] || break; usleep 100000; done
  [ -e /sys/class/net/eth1 ] || echo "L2: eth1 gone"
fi
if [ "$mode" = vsock ]; then
  wait $vsock_listener && echo "L2: PASS vsock from the host" || echo "L2: FAIL vsock from the host"
fi
# L1 reads the device's counters, then stops vmm (vmmctl shutdown --force).
echo "L2: done"
sleep 3600
