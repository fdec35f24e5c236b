// Fuzzes a VT-d remapping unit as a hostile guest drives it: any sequence of register reads and
// writes, edits of guest memory (its root, context and page tables, its invalidation queue),
// descriptors queued at the tail, emulated-device DMA and interrupt requests through interrupt
// remapping, with a VfioShadow of one device's address space on a fake host IOMMU. Checked:
// nothing crashes or hangs, every host mapping the shadow makes lies inside the guest's RAM (a
// guest never gets DMA to memory it does not own), and a remapped interrupt is always a
// compatibility-format MSI (the table can never make the VMM deliver something else).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "iommu/shadow.h"
#include "iommu/testing/fake_dma_backend.h"
#include "iommu/vtd/unit.h"
#include "memory/address_space.h"
#include "tools/testing/fuzz_input.h"

namespace vmmkit::iommu::vtd {
namespace {

constexpr uint64_t kRamSize = 4 << 20;
constexpr uint64_t kRootTable = 0x1000, kQueue = 0x2000;

void Run(const uint8_t* data, size_t size) {
  std::shared_ptr<GuestRegion> region = *GuestRegion::Create(GuestAddress(0), kRamSize);
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create({region});
  AddressSpace system("system");
  fuzzing::Require(system.AddRam("ram", region).ok(), "add RAM");
  testing::FakeDmaBackend host;
  std::unique_ptr<VfioShadow> shadow = *VfioShadow::Create(host, system);
  const bool remapping = size > 0 && (data[0] & 1);
  RemappingUnit* self = nullptr;
  RemappingUnit unit(*ram, {.send_msi = [](uint64_t, uint32_t) {},
                            .interrupt_remapping = remapping,
                            .on_interrupt_entries_changed =
                                [&] {
                                  (void)self->Translate({0xfee00018, 0}, 0x0018);
                                }});
  self = &unit;
  fuzzing::Require(unit.RegisterNotifier(0x0018, shadow.get()).ok(), "register");
  uint32_t tail = 0;
  vmmkit::fuzzing::FuzzInput in(data, size);
  for (int ops = 0; !in.done() && ops < 256; ++ops) {
    switch (in.Take<uint8_t>() % 8) {
      case 0: {  // Guest RAM.
        const uint64_t at = (in.Take<uint32_t>() % (kRamSize / 8)) * 8;
        (void)ram->WriteObj(GuestAddress(at), in.Take<uint64_t>());
        break;
      }
      case 1: {
        const uint64_t off = in.Take<uint16_t>() % (RemappingUnit::kSize + 8);
        const uint32_t v = in.Take<uint32_t>();
        unit.Write(off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 4));
        break;
      }
      case 2: {
        const uint64_t off = in.Take<uint16_t>() % (RemappingUnit::kSize + 8);
        const uint64_t v = in.Take<uint64_t>();
        unit.Write(off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 8));
        break;
      }
      case 3: {
        uint8_t buf[8];
        const uint64_t off = in.Take<uint16_t>() % (RemappingUnit::kSize + 8);
        unit.Read(off, absl::MakeSpan(buf, 1 + in.Take<uint8_t>() % 8));
        break;
      }
      case 4: {
        const uint16_t sid = in.Take<uint8_t>() % 2 ? 0x0018 : in.Take<uint16_t>();
        (void)unit.TranslateDma(sid, Iova(in.Take<uint64_t>() % (uint64_t{1} << 40)),
                                in.Take<uint8_t>() % 2 ? IommuAccess::kWrite : IommuAccess::kRead);
        break;
      }
      case 5: {  // What a driver's boot writes: reach the deep states quickly.
        const uint32_t zero = 0;
        unit.Write(kRegIqt, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&zero), 4));
        const uint64_t iqa = kQueue, rta = kRootTable;
        unit.Write(kRegIqa, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&iqa), 8));
        unit.Write(kRegRtaddr, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&rta), 8));
        for (uint32_t cmd : {kGcmdQie, kGcmdQie | kGcmdSrtp, kGcmdQie | kGcmdTe}) {
          unit.Write(kRegGcmd, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&cmd), 4));
        }
        tail = 0;
        break;
      }
      case 6: {  // A descriptor at the tail.
        const uint64_t qw0 = in.Take<uint64_t>(), qw1 = in.Take<uint64_t>();
        (void)ram->WriteObj(GuestAddress(kQueue + 16 * tail), qw0);
        (void)ram->WriteObj(GuestAddress(kQueue + 16 * tail + 8), qw1);
        tail = (tail + 1) % 256;
        const uint32_t iqt = tail << 4;
        unit.Write(kRegIqt, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&iqt), 4));
        break;
      }
      case 7: {  // An interrupt request.
        const irq::MsiMessage msg{0xfee00000u | in.Take<uint32_t>() % 0x100000,
                                  in.Take<uint32_t>()};
        absl::StatusOr<irq::MsiMessage> out = unit.Translate(msg, in.Take<uint16_t>());
        fuzzing::Require(!out.ok() || !irq::IsRemappableFormat(*out),
                         "a remapped interrupt in remappable format");
        fuzzing::Require(!out.ok() || (out->address & 0xfff00000u) == 0xfee00000u,
                         "a remapped interrupt off the MSI page");
        break;
      }
    }
    for (const auto& [iova, m] : host.mappings) {
      fuzzing::Require(
          m.host >= region->host_address() && m.host + m.size <= region->host_address() + kRamSize,
          "a host mapping outside guest RAM");
    }
  }
  fuzzing::Require(unit.UnregisterNotifier(0x0018, shadow.get()).ok(), "unregister");
}

}  // namespace
}  // namespace vmmkit::iommu::vtd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::iommu::vtd::Run(data, size);
  return 0;
}
