#include "vfio/dma_listener.h"

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::vfio {
namespace {

absl::Status Annotate(const absl::Status& s, const std::string& listener, const char* op,
                      const AddressSpaceRegion& region, const DmaBackend& backend) {
  return Prefixed(s, listener, ": ", op, " ", region.ToString(), " in ", backend.name());
}

}  // namespace

absl::Status DmaMappingListener::RegionAdd(const AddressSpaceRegion& region) {
  if (region.kind != RegionKind::kRam) return absl::OkStatus();  // MMIO: never DMA-mapped.
  const Iova iova(region.start.raw());
  // The valid ranges can change (iommufd narrows them as devices attach): ask each time, so that
  // a region in the host's reserved window (e.g. x86's MSI range) gets a message saying so rather
  // than the kernel's bare EINVAL.
  auto caps = backend_.GetCapabilities();
  if (!caps.ok()) return Annotate(caps.status(), name_, "map", region, backend_);
  if (absl::Status s = caps->CheckIovaRange(iova, region.size); !s.ok()) {
    return Annotate(s, name_, "map", region, backend_);
  }
  if (absl::Status s = backend_.MapDma(iova, *region.ram, 0, region.size, /*writable=*/true);
      !s.ok()) {
    return Annotate(s, name_, "map", region, backend_);
  }
  mapped_[iova.raw()] = region.ram;
  return absl::OkStatus();
}

void DmaMappingListener::RegionDel(const AddressSpaceRegion& region) {
  auto it = mapped_.find(region.start.raw());
  if (it == mapped_.end()) return;  // MMIO, or never mapped.
  // The region stays held until the unmap is done: a device must not DMA into freed memory.
  if (absl::Status s = backend_.UnmapDma(Iova(region.start.raw()), region.size); !s.ok()) {
    LogError(Annotate(s, name_, "unmap", region, backend_).ToString());
  }
  mapped_.erase(it);
}

std::vector<IovaRange> DmaMappingListener::mappings() const {
  std::vector<IovaRange> out;
  for (const auto& [iova, ram] : mapped_) {
    out.push_back({Iova(iova), Iova(iova + (ram->size() - 1))});
  }
  return out;
}

absl::Status DmaPreRegistrationListener::RegionAdd(const AddressSpaceRegion& region) {
  if (region.kind != RegionKind::kRam || !backend_.needs_pre_registration()) {
    return absl::OkStatus();
  }
  if (absl::Status s = backend_.RegisterMemory(*region.ram, 0, region.size); !s.ok()) {
    return Annotate(s, name_, "pre-register", region, backend_);
  }
  registered_[region.start.raw()] = region.ram;
  return absl::OkStatus();
}

void DmaPreRegistrationListener::RegionDel(const AddressSpaceRegion& region) {
  auto it = registered_.find(region.start.raw());
  if (it == registered_.end()) return;
  if (absl::Status s = backend_.UnregisterMemory(*it->second, 0, region.size); !s.ok()) {
    LogError(Annotate(s, name_, "unregister", region, backend_).ToString());
  }
  registered_.erase(it);
}

std::vector<std::pair<GuestAddress, uint64_t>> DmaPreRegistrationListener::registered() const {
  std::vector<std::pair<GuestAddress, uint64_t>> out;
  for (const auto& [start, ram] : registered_) out.push_back({GuestAddress(start), ram->size()});
  return out;
}

}  // namespace vmmkit::vfio
