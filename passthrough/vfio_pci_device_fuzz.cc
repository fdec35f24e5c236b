// Fuzzes VfioPciDevice the way a hostile guest can drive it: any sequence of configuration-space
// reads and writes (any dword below 4096, any byte mask), accesses of every size in and around the
// BARs wherever the guest moved them (the MSI-X table and PBA, the I/O BAR, the rest of BAR0,
// which goes to the device), the device firing each of its interrupts, and a detach in the middle
// (a vCPU may still hold the device). The device is an edu-like function on the fake vfio-pci
// kernel; the VM and its interrupt routes are real KVM. Checked for every input: guest RAM stays
// where it was, whole; and once the device is gone nothing of it is left: no KVM route, no BAR in
// the guest's address space, no trap on either bus. ASan and UBSan catch the rest.
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "devices/bus.h"
#include "irq/msi_routes.h"
#include "kvm/kvm.h"
#include "kvm/testing/tiny_guest.h"
#include "memory/address_space.h"
#include "memory/guest_region.h"
#include "passthrough/testing/edu_like_device.h"
#include "passthrough/vfio_pci_device.h"
#include "tools/testing/fuzz_input.h"
#include "tools/testing/skip.h"
#include "vfio/container.h"
#include "vfio/group.h"
#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::passthrough {
namespace {

constexpr char kBdf[] = "0000:00:03.0";
constexpr uint64_t kRamSize = 16 << 20;  // Guest RAM at 0: a BAR must never land on it.

struct World {
  std::unique_ptr<kvm::Kvm> kvm;
  std::unique_ptr<kvm::testing::TinyGuest> guest;
  std::unique_ptr<irq::MsiRoutes> routes;
  std::unique_ptr<irq::KvmIrqLines> lines;
  vfio::testing::FakeVfioKernel kernel;
  std::shared_ptr<vfio::VfioGroup> group;
  AddressSpace memory{"system"};
  devices::Bus mmio{"mmio"};
  devices::Bus pio{"pio"};
  Mutex lock;
};

World* TheWorld() {
  static World* world = []() -> World* {
    auto w = std::make_unique<World>();
    absl::StatusOr<kvm::Kvm> kvm = kvm::Kvm::Open();
    if (!kvm.ok()) {
      // Without KVM there is nothing to fuzz: reported as skipped, not passed.
      vmmkit::SkipTest(
          absl::StrCat("vfio_pci_device_fuzz needs KVM: ", kvm.status().ToString()).c_str());
    }
    w->kvm = std::make_unique<kvm::Kvm>(*std::move(kvm));
    absl::StatusOr<kvm::testing::TinyGuest> guest = kvm::testing::MakeTinyGuest(
        *w->kvm, kvm::testing::CpuMode::kLong, {0xf4}, {.irqchip = true});
    if (!guest.ok()) std::abort();
    w->guest = std::make_unique<kvm::testing::TinyGuest>(*std::move(guest));
    w->routes =
        std::make_unique<irq::MsiRoutes>(*w->guest->vm, 24, 64, kvm::DefaultIrqchipRoutes());
    w->lines = std::make_unique<irq::KvmIrqLines>(*w->guest->vm);
    absl::StatusOr<std::shared_ptr<GuestRegion>> ram =
        GuestRegion::Create(GuestAddress(0), kRamSize);
    if (!ram.ok() || !w->memory.AddRam("ram", *ram).ok()) std::abort();
    w->kernel.groups[5] = {};
    w->kernel.devices[kBdf] = testing::EduLikeDevice(5);
    absl::StatusOr<std::shared_ptr<vfio::VfioContainer>> container =
        vfio::VfioContainer::Open(w->kernel);
    absl::StatusOr<std::shared_ptr<vfio::VfioGroup>> group = vfio::VfioGroup::Open(5, w->kernel);
    if (!container.ok() || !group.ok() || !(*group)->SetContainer(*container).ok() ||
        !(*container)->SetType1Iommu().ok()) {
      std::abort();
    }
    w->group = *group;
    return w.release();
  }();
  return world;
}

// Registers a guest pokes at most, so that short random inputs reach the interesting states.
constexpr uint16_t kInterestingRegs[] = {PCI_COMMAND,
                                         PCI_BASE_ADDRESS_0,
                                         PCI_BASE_ADDRESS_1,
                                         PCI_BASE_ADDRESS_4,
                                         PCI_ROM_ADDRESS,
                                         0x50,
                                         0x54,
                                         0x58,
                                         0x5c,
                                         0x60,
                                         0x70};

void RamIntact(World& w) {
  const AddressSpaceRegion* r = w.memory.Find(GuestAddress(0));
  if (r == nullptr || r->kind != RegionKind::kRam || r->start.raw() != 0 || r->size != kRamSize) {
    std::fprintf(stderr, "vfio_pci_device_fuzz: guest RAM was covered or moved\n");
    std::abort();
  }
}

}  // namespace
}  // namespace vmmkit::passthrough

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmmkit;               // NOLINT: a fuzz entry point outside the namespace.
  using namespace vmmkit::passthrough;  // NOLINT
  World* w = TheWorld();
  if (w == nullptr) return 0;
  w->kernel.devices[kBdf].irq_sets.clear();  // Only this input's.
  absl::StatusOr<std::unique_ptr<vfio::VfioDevice>> vfio_device = w->group->GetDevice(kBdf);
  if (!vfio_device.ok()) std::abort();
  absl::StatusOr<std::shared_ptr<VfioPciDevice>> created = VfioPciDevice::Create(
      *std::move(vfio_device),
      {*w->guest->vm, w->memory, w->mmio, w->pio, *w->routes, *w->lines, w->lock},
      {.id = "fuzz", .device_number = 1, .guest_requester_id = 3 << 3, .intx_gsi = 10});
  if (!created.ok()) std::abort();
  std::shared_ptr<VfioPciDevice> dev = *std::move(created);
  if (!dev->PlaceBars([](const pci::Bar& b) -> absl::StatusOr<uint64_t> {
            return b.io ? 0xc000 : 0xc0000000;
          })
           .ok()) {
    std::abort();
  }
  std::set<std::pair<bool, uint64_t>> placed;  // (io, address) of every BAR placement seen.
  for (const VirtualBar& b : dev->bars()) placed.insert({b.io, b.address});
  vmmkit::fuzzing::FuzzInput in(data, size);
  while (!in.done()) {
    const uint8_t op = in.Take<uint8_t>();
    switch (op % 5) {
      case 0: {  // Config write.
        const uint16_t raw = in.Take<uint16_t>();
        const uint16_t reg = (op & 0x80) ? static_cast<uint16_t>(raw & 0xffc)
                                         : kInterestingRegs[raw % std::size(kInterestingRegs)];
        dev->ConfigWrite(reg, in.Take<uint32_t>(), in.Take<uint8_t>() & 0xf);
        for (const VirtualBar& b : dev->bars()) placed.insert({b.io, b.address});
        break;
      }
      case 1:  // Config read.
        (void)dev->ConfigRead(static_cast<uint16_t>(in.Take<uint16_t>() & 0xffc));
        break;
      case 2: {  // A BAR access, mostly the MSI-X table and PBA.
        const std::vector<VirtualBar> bars = dev->bars();
        const uint8_t pick = in.Take<uint8_t>();
        if (bars.empty()) break;
        const VirtualBar& bar = bars[pick % bars.size()];
        uint64_t offset = in.Take<uint32_t>();
        if (!bar.io && (pick & 0x30) != 0x30) {
          offset = ((pick & 0x10) ? testing::kEduMsixPba : testing::kEduMsixTable) + offset % 0x100;
        } else {
          offset %= bar.size + 16;  // A little past the end, too.
        }
        static constexpr size_t kSizes[] = {1, 2, 4, 8};
        uint8_t buf[8];
        const uint64_t value = in.Take<uint64_t>();
        std::memcpy(buf, &value, sizeof(buf));
        const absl::Span<uint8_t> access(buf, kSizes[(pick >> 6) & 3]);
        devices::Bus& bus = bar.io ? w->pio : w->mmio;
        if (op & 0x80) {
          (void)bus.Write(bar.address + offset, access);
        } else {
          (void)bus.Read(bar.address + offset, access);
        }
        break;
      }
      case 3: {  // The device raises an interrupt.
        static constexpr uint32_t kIndexes[] = {VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX,
                                                VFIO_PCI_MSIX_IRQ_INDEX};
        const uint8_t which = in.Take<uint8_t>();
        const int fd =
            testing::CurrentIrqFd(w->kernel.devices[kBdf], kIndexes[which % 3], (which >> 2) % 8);
        const uint64_t one = 1;
        if (fd >= 0 && ::write(fd, &one, sizeof(one)) != sizeof(one)) std::abort();
        break;
      }
      case 4:  // Unplugged while the guest goes on touching it.
        if ((op & 0xf0) == 0xf0) dev->Detach();
        break;
    }
    RamIntact(*w);
  }
  dev.reset();
  RamIntact(*w);
  if (w->routes->size() != 0) {
    std::fprintf(stderr, "vfio_pci_device_fuzz: %zu KVM routes left\n", w->routes->size());
    std::abort();
  }
  for (const AddressSpaceRegion& r : w->memory.regions()) {
    if (r.kind != RegionKind::kRam) {
      std::fprintf(stderr, "vfio_pci_device_fuzz: region %s left\n", r.name.c_str());
      std::abort();
    }
  }
  uint8_t probe[4];
  for (auto [io, address] : placed) {
    if ((io ? w->pio : w->mmio).Read(address, absl::MakeSpan(probe, sizeof(probe)))) {
      std::fprintf(stderr, "vfio_pci_device_fuzz: a trap left at %#llx\n",
                   static_cast<unsigned long long>(address));
      std::abort();
    }
  }
  return 0;
}
