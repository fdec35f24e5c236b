#include "examples/viommu_shadow.h"

#include <linux/pci_regs.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "iommu/iommu.h"
#include "iommu/shadow.h"
#include "memory/address_space.h"
#include "memory/guest_memory.h"
#include "vfio/container.h"
#include "vfio/device.h"
#include "vfio/group.h"

namespace vmmkit::examples {
namespace {

// The guest's IOMMU page table, as the guest writes it (4 KiB pages).
class GuestPageTable : public iommu::IommuModel {
 public:
  void Map(uint64_t iova, uint64_t size, uint64_t gpa) {
    for (uint64_t off = 0; off < size; off += 0x1000) {
      pages_[iova + off] = {Iova(iova + off), gpa + off, 0xfff, iommu::IommuAccess::kReadWrite};
    }
  }
  void Unmap(uint64_t iova, uint64_t size) {
    pages_.erase(pages_.lower_bound(iova), pages_.lower_bound(iova + size));
  }
  absl::StatusOr<iommu::IotlbEntry> Translate(Iova iova, iommu::IommuAccess access) override {
    auto it = pages_.find(iova.raw() & ~0xfffull);
    if (it == pages_.end())
      return absl::NotFoundError(absl::StrCat("no page at ", iova.ToString()));
    if (!iommu::Allows(it->second.perm, access)) return absl::PermissionDeniedError("read-only");
    return it->second;
  }
  void Walk(Iova start, Iova last,
            const std::function<void(const iommu::IotlbEntry&)>& visit) override {
    for (auto it = pages_.lower_bound(start.raw() & ~0xfffull);
         it != pages_.end() && it->first <= last.raw(); ++it) {
      visit(it->second);
    }
  }

 private:
  std::map<uint64_t, iommu::IotlbEntry> pages_;
};

// QEMU's edu (docs/specs/edu.rst): a DMA engine between bus addresses and a 4 KiB buffer.
constexpr uint64_t kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCount = 0x90, kDmaCmd = 0x98;
constexpr uint64_t kEduBuffer = 0x40000;
constexpr uint32_t kDmaStart = 1, kDmaToRam = 2;
constexpr uint32_t kDmaLen = 2048;  // QEMU 7.2's edu refuses a transfer ending at its buffer's end.

absl::Status EduDma(const vfio::MappedRegion& bar, uint64_t src, uint64_t dst, uint32_t cmd) {
  RETURN_IF_ERROR(bar.Write64(kDmaSrc, src));
  RETURN_IF_ERROR(bar.Write64(kDmaDst, dst));
  RETURN_IF_ERROR(bar.Write64(kDmaCount, kDmaLen));
  RETURN_IF_ERROR(bar.Write64(kDmaCmd, cmd | kDmaStart));
  for (int i = 0; i < 2000; ++i) {
    ASSIGN_OR_RETURN(uint64_t c, bar.Read64(kDmaCmd));
    if ((c & kDmaStart) == 0) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::DeadlineExceededError("edu's DMA engine did not finish in 2 s");
}

}  // namespace

absl::Status RunViommuShadow(const ViommuShadowOptions& options, std::ostream& out) {
  vfio::VfioSyscalls& sys =
      options.syscalls != nullptr ? *options.syscalls : vfio::RealVfioSyscalls();
  // memory/: 64 MiB of guest RAM in the guest's physical address space.
  ASSIGN_OR_RETURN(GuestMemory ram, GuestMemory::CreateRam({{GuestAddress(0), 64 << 20}}));
  AddressSpace system("system");
  RETURN_IF_ERROR(system.AddRam("ram", ram.regions()[0]));

  // vfio/: the host function in a type1 container.
  absl::StatusOr<std::shared_ptr<vfio::VfioContainer>> container = vfio::VfioContainer::Open(sys);
  RETURN_IF_ERROR(Prefixed(container.status(), "open the container"));
  absl::StatusOr<std::shared_ptr<vfio::VfioGroup>> group =
      vfio::VfioGroup::Open(options.group, sys);
  RETURN_IF_ERROR(Prefixed(group.status(), "open the group"));
  RETURN_IF_ERROR(Prefixed((*group)->SetContainer(*container), "add the group"));
  RETURN_IF_ERROR(Prefixed((*container)->SetType1Iommu().status(), "set the IOMMU model"));
  absl::StatusOr<std::unique_ptr<vfio::VfioDevice>> device = (*group)->GetDevice(options.bdf);
  RETURN_IF_ERROR(Prefixed(device.status(), "open the device"));
  out << "opened " << options.bdf << " in a type1 container (group " << options.group << ")\n";

  // iommu/: the guest's IOMMU, and the shadow that mirrors it into the container.
  GuestPageTable table;
  iommu::IommuAddressSpace viommu("device", table);
  absl::StatusOr<std::unique_ptr<iommu::VfioShadow>> shadow =
      iommu::VfioShadow::Create(**container, system);
  RETURN_IF_ERROR(Prefixed(shadow.status(), "create the shadow"));
  RETURN_IF_ERROR(viommu.RegisterNotifier(shadow->get(), Iova(0), Iova(~0ull),
                                          iommu::kMapEvents | iommu::kUnmapEvents));

  // The guest maps its buffer and, as a caching-mode IOMMU requires, invalidates: the shadow
  // maps it into the container (its four pages coalesced into one host mapping).
  table.Map(kIova, kBufferSize, kBufferGpa);
  viommu.InvalidateRange(Iova(kIova), kBufferSize);
  for (const iommu::IommuFault& f : viommu.TakeFaults()) {
    return absl::InternalError(absl::StrCat("shadow map fault: ", f.reason));
  }
  out << "guest mapped IOVA 0x" << std::hex << kIova << " -> GPA 0x" << kBufferGpa << std::dec
      << ": " << (*shadow)->host_mappings().size() << " host mapping(s), " << (*shadow)->map_calls()
      << " map call(s)\n";
  if (options.on_step) options.on_step(true);

  std::optional<vfio::MappedRegion> bar;
  if (options.edu_dma) {
    ASSIGN_OR_RETURN(bar, (*device)->MapRegion(VFIO_PCI_BAR0_REGION_INDEX));
    RETURN_IF_ERROR(
        (*device)->WriteConfig(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
    // Guest RAM -> edu through IOVA kIova, edu -> guest RAM through the buffer's third page.
    uint8_t* src = ram.regions()[0]->host_address() + kBufferGpa;
    uint8_t* dst = src + 0x2000;
    for (uint32_t i = 0; i < kDmaLen; ++i) src[i] = static_cast<uint8_t>(i * 7 + 1);
    std::memset(dst, 0, kDmaLen);
    RETURN_IF_ERROR(Prefixed(EduDma(*bar, kIova, kEduBuffer, 0), "DMA in"));
    RETURN_IF_ERROR(Prefixed(EduDma(*bar, kEduBuffer, kIova + 0x2000, kDmaToRam), "DMA out"));
    if (std::memcmp(src, dst, kDmaLen) != 0) {
      return absl::DataLossError("the DMA roundtrip through the guest's IOVAs lost data");
    }
    out << "edu DMA roundtrip through the guest's IOVAs: data verified\n";
  }

  // The guest unmaps and invalidates: the shadow unmaps, and the device reaches nothing there.
  table.Unmap(kIova, kBufferSize);
  viommu.InvalidateRange(Iova(kIova), kBufferSize);
  out << "guest unmapped it: " << (*shadow)->host_mappings().size() << " host mapping(s), "
      << (*shadow)->unmap_calls() << " unmap call(s)\n";
  if (options.on_step) options.on_step(false);
  if (options.edu_dma) {
    uint8_t* dst = ram.regions()[0]->host_address() + kBufferGpa + 0x2000;
    std::memset(dst, 0, kDmaLen);
    (void)EduDma(*bar, kEduBuffer, kIova + 0x2000, kDmaToRam);  // Faults in the host IOMMU.
    for (uint32_t i = 0; i < kDmaLen; ++i) {
      if (dst[i] != 0) return absl::InternalError("a DMA to an unmapped IOVA reached guest RAM");
    }
    out << "edu DMA to the unmapped IOVA: guest RAM untouched\n";
    (void)(*device)->WriteConfig(PCI_COMMAND, 2, 0);
  }
  RETURN_IF_ERROR(viommu.UnregisterNotifier(shadow->get()));
  return absl::OkStatus();
}

}  // namespace vmmkit::examples
