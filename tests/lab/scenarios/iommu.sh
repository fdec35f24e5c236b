# vmm's guest-visible VT-d, end to end: L1's edu (behind a PCIe root port) is bound to vfio-pci
# and given to an L2 Linux guest with vmm --iommu --irqchip=split, so the unit remaps interrupts
# too. The guest's
# intel-iommu driver finds the unit
# through the DMAR table and runs it in caching mode; its checks (l2/iommu_init.sh) do DMA through
# the kernel's DMA API, so every buffer the driver maps and unmaps goes guest page table ->
# invalidation -> vmm's shadow -> L1's VFIO container. vmm's resource report shows what stays
# mapped; at the end the guest programs nonsense into the unit, which must report it while vmm
# keeps running; a forced shutdown ends the VM.
. /lab/lib.sh
K=/lab/vmlinuz
I=/lab/l2iommu.cpio
SOCK=/tmp/vmm.sock
ctl() { vmmctl --socket=$SOCK "$@"; }

edu_to_vfio
check "edu bound to vfio-pci (group $group)" test -c "/dev/vfio/$group"

vmm --kernel=$K --initrd=$I --memory=256 --cmdline="console=ttyS0 reboot=k iomem=relaxed" --iommu \
  --irqchip=split --device vfio-pci,host=$bdf --api_socket=$SOCK </dev/null >/tmp/l2.log 2>&1 &
pid=$!
for i in $(seq 1 300); do
  grep -q "L2: iommu checks done" /tmp/l2.log && break
  kill -0 $pid 2>/dev/null || break
  sleep 1
done
grep -E "^L2|DMAR|vmm" /tmp/l2.log | sed 's/^/  L2| /' | tail -n 40
for c in "Linux found the DMAR table's remapping unit at 0xfed90000" \
  "intel-iommu is on (dmar0 registered)" "it knows the unit is in caching mode" \
  "interrupt remapping is on (xAPIC mode)" \
  "the serial console's interrupt is remapped (IR-IO-APIC)" \
  "edu is on the guest's PCI bus" "edu is in an IOMMU group" \
  "DMA API: 10 roundtrips through the IOMMU verified" "DMA API: no DMAR fault" \
  "MSI: 20 raised interrupts counted in /proc/interrupts" "MSI: edu's vector is remapped (IR-PCI-MSI)" \
  "edu_msi unbound" \
  "userspace VFIO in the guest: vfio_probe passes (DMA at its IOVAs, unmapped IOVA faults, MSI)" \
  "nonsense root table: the guest's fault handler reports reason 8"; do
  check "L2: $c" grep -qF "L2: PASS $c" /tmp/l2.log
done

check "L2: nonsense queue tail: IQE reported" grep -q "L2: PASS nonsense queue tail" /tmp/l2.log
expect_rc 0 "get (vmm kept running through the guest's nonsense)" ctl get
check "the VM is RUNNING" grep -q RUNNING /tmp/ctl.out
cat /tmp/ctl.out | sed 's/^/  get| /'
expect_rc 0 "devices" ctl devices
check "devices: edu passed through as hostdev0" grep -q "hostdev0.*$bdf" /tmp/ctl.out
# Exactness, from vmm's counters for the device: with the drivers gone nothing stays mapped, and
# every host mapping vmm made was unmapped exactly once (no duplicate unmap, none missed).
expect_rc 0 "device hostdev0" ctl device hostdev0
iommu=$(grep "iommu" /tmp/ctl.out)
echo "lab: hostdev0 $iommu"
num() { echo "$iommu" | sed -n "s/.*$1 \([0-9]*\).*/\1/p"; }
shadowed=$(echo "$iommu" | sed -n 's/.* \([0-9]*\) shadowed mappings.*/\1/p')
maps=$(num "host map"); unmaps=$(num "unmap"); pages=$(num "page")
check "the guest put edu in a translated domain" sh -c "echo '$iommu' | grep -q 'domain [1-9]'"
check "nothing of edu stays mapped after its driver left (shadowed: $shadowed)" test "$shadowed" = 0
check "host maps = host unmaps ($maps, $unmaps): none duplicated, none missed" test "$maps" = "$unmaps"
check "at least the driver's 40 map/unmap invalidations arrived page-selective ($pages)" \
  test "${pages:-0}" -ge 40
expect_rc 0 "forced shutdown" ctl shutdown --force
wait $pid
rc=$?
check "vmm exits 0 after a forced shutdown (rc=$rc)" test "$rc" -eq 0
check "the guest never saw an error from vmm" sh -c '! grep -q "vmm: .*error" /tmp/l2.log'

# Hotplug behind the unit, interrupts remapped too: a guest without devices gets edu hot-added,
# removed, added again. Each time the guest attaches it to a domain and runs DMA-API roundtrips
# (edu_msi, loaded before, completes each on edu's remapped MSI); the second add must find a
# fresh container with the domain's mappings replayed, and no route may outlive the device.
routes() { vmmctl --socket=$SOCK get | sed -n 's/.*msi routes \([0-9]*\).*/\1/p'; }
vmm --kernel=$K --initrd=/lab/l2iommuhp.cpio --memory=256 --cmdline="console=ttyS0 reboot=k quiet" \
  --iommu --irqchip=split --api_socket=$SOCK </dev/null >/tmp/l2hp.log 2>&1 &
pid=$!
check "hotplug guest up" wait_log /tmp/l2hp.log "L2: ready" 120
check "its interrupts are remapped" wait_log /tmp/l2hp.log "L2: IRQ remapping on" 5
base=$(routes)
expect_rc 0 "AddDevice hp0 behind the VT-d" ctl add hp0 $bdf
check "hot-added edu: the guest's DMA-API roundtrips verified" wait_log /tmp/l2hp.log "L2: verified 1" 60
expect_rc 0 "device hp0" ctl device hp0
grep iommu /tmp/ctl.out | sed 's/^/  /'
check "hp0 is in a guest domain" grep -q "iommu.*domain [1-9]" /tmp/ctl.out
used=$(routes)
check "hp0's MSI has a route while it is attached ($used, $base before)" test "$used" -gt "$base"
expect_rc 0 "RemoveDevice hp0 (the guest releases it)" ctl remove hp0
check "no stale route after the removal ($(routes), $base before the add)" test "$(routes)" = "$base"
expect_rc 0 "AddDevice hp0 again" ctl add hp0 $bdf
check "added again: roundtrips verified again" wait_log /tmp/l2hp.log "L2: verified 2" 60
expect_rc 0 "device hp0" ctl device hp0
grep iommu /tmp/ctl.out | sed 's/^/  /'
check "after its DMA nothing of hp0 stays mapped" grep -q " 0 shadowed mappings" /tmp/ctl.out
check "no DMA failure in the guest" sh -c '! grep -q "L2: DMA FAIL" /tmp/l2hp.log'
expect_rc 0 "RemoveDevice hp0 again" ctl remove hp0
check "no stale route after the second removal" test "$(routes)" = "$base"
expect_rc 0 "forced shutdown" ctl shutdown --force
wait $pid
check "vmm exits 0 (rc=$?)" test "$?" -eq 0
finish
