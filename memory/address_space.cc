#include "memory/address_space.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit {
namespace {

// Wraps a listener's error so that it names the address space, the operation and the listener,
// keeping the listener's code (RESOURCE_EXHAUSTED from a memlock limit stays that).
absl::Status ListenerError(const absl::Status& s, const std::string& space, const std::string& op,
                           const AddressSpaceRegion& region, const MemoryListener& listener) {
  return absl::Status(s.code(),
                      absl::StrCat("address space ", space, ": ", op, " ", region.ToString(), ": ",
                                   listener.name(), ": ", s.message()));
}

}  // namespace

const char* RegionKindName(RegionKind kind) {
  switch (kind) {
    case RegionKind::kRam:
      return "RAM";
    case RegionKind::kMmio:
      return "MMIO";
    case RegionKind::kDeviceMemory:
      return "device memory";
  }
  return "?";
}

std::string AddressSpaceRegion::ToString() const {
  return absl::StrCat(name, " [", start.ToString(), ", ", last().ToString(), "] ",
                      RegionKindName(kind));
}

absl::Status AddressSpace::AddRam(std::string name, std::shared_ptr<GuestRegion> ram) {
  if (ram == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("address space ", name_, ": add ", name, ": null RAM region"));
  }
  AddressSpaceRegion region{.name = std::move(name),
                            .start = ram->start(),
                            .size = ram->size(),
                            .kind = RegionKind::kRam,
                            .ram = std::move(ram)};
  return Add(std::move(region));
}

absl::Status AddressSpace::AddDeviceMemory(std::string name, std::shared_ptr<GuestRegion> memory) {
  if (memory == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("address space ", name_, ": add ", name, ": null device memory region"));
  }
  AddressSpaceRegion region{.name = std::move(name),
                            .start = memory->start(),
                            .size = memory->size(),
                            .kind = RegionKind::kDeviceMemory,
                            .ram = std::move(memory)};
  return Add(std::move(region));
}

absl::Status AddressSpace::AddMmio(std::string name, GuestAddress start, uint64_t size) {
  if (!RangeLast(start.raw(), size)) {
    return absl::InvalidArgumentError(absl::StrCat("address space ", name_, ": add ", name, " [",
                                                   start.ToString(), ", +", Hex(size),
                                                   "): size is zero or the range wraps past 2^64"));
  }
  return Add(AddressSpaceRegion{.name = std::move(name),
                                .start = start,
                                .size = size,
                                .kind = RegionKind::kMmio,
                                .ram = nullptr});
}

absl::Status AddressSpace::Add(AddressSpaceRegion region) {
  // Overlap check: the nearest region at or below the new one's last byte must end before it.
  auto next = regions_.upper_bound(region.last().raw());
  if (next != regions_.begin()) {
    const AddressSpaceRegion& prev = std::prev(next)->second;
    if (prev.last() >= region.start) {
      return absl::AlreadyExistsError(absl::StrCat(
          "address space ", name_, ": add ", region.ToString(), ": overlaps ", prev.ToString()));
    }
  }
  for (size_t i = 0; i < listeners_.size(); ++i) {
    absl::Status s = listeners_[i]->RegionAdd(region);
    if (!s.ok()) {
      for (size_t j = i; j-- > 0;) listeners_[j]->RegionDel(region);
      return ListenerError(s, name_, "add", region, *listeners_[i]);
    }
  }
  regions_.emplace(region.start.raw(), std::move(region));
  return absl::OkStatus();
}

absl::Status AddressSpace::Remove(GuestAddress start) {
  auto it = regions_.find(start.raw());
  if (it == regions_.end()) {
    return absl::NotFoundError(
        absl::StrCat("address space ", name_, ": no region starts at ", start.ToString()));
  }
  for (auto l = listeners_.rbegin(); l != listeners_.rend(); ++l) (*l)->RegionDel(it->second);
  regions_.erase(it);
  return absl::OkStatus();
}

absl::Status AddressSpace::RegisterListener(MemoryListener* listener) {
  if (listener == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("address space ", name_, ": null listener"));
  }
  if (std::find(listeners_.begin(), listeners_.end(), listener) != listeners_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("address space ", name_, ": ", listener->name(), " is already registered"));
  }
  for (auto it = regions_.begin(); it != regions_.end(); ++it) {
    absl::Status s = listener->RegionAdd(it->second);
    if (!s.ok()) {
      for (auto undo = std::make_reverse_iterator(it); undo != regions_.rend(); ++undo) {
        listener->RegionDel(undo->second);
      }
      return ListenerError(s, name_, "replay", it->second, *listener);
    }
  }
  // After every listener of lower or equal priority: ties keep registration order.
  auto pos = std::upper_bound(listeners_.begin(), listeners_.end(), listener->priority(),
                              [](int p, const MemoryListener* l) { return p < l->priority(); });
  listeners_.insert(pos, listener);
  return absl::OkStatus();
}

absl::Status AddressSpace::UnregisterListener(MemoryListener* listener) {
  ASSIGN_OR_RETURN(std::vector<AddressSpaceRegion> seen, RemoveListener(listener));
  for (auto r = seen.rbegin(); r != seen.rend(); ++r) listener->RegionDel(*r);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AddressSpaceRegion>> AddressSpace::RemoveListener(
    MemoryListener* listener) {
  auto it = std::find(listeners_.begin(), listeners_.end(), listener);
  if (it == listeners_.end()) {
    return absl::NotFoundError(
        absl::StrCat("address space ", name_, ": listener is not registered"));
  }
  listeners_.erase(it);
  return regions();
}

const AddressSpaceRegion* AddressSpace::Find(GuestAddress addr) const {
  auto it = regions_.upper_bound(addr.raw());
  if (it == regions_.begin()) return nullptr;
  const AddressSpaceRegion& r = std::prev(it)->second;
  return addr <= r.last() ? &r : nullptr;
}

std::vector<AddressSpaceRegion> AddressSpace::regions() const {
  std::vector<AddressSpaceRegion> out;
  out.reserve(regions_.size());
  for (const auto& [start, r] : regions_) out.push_back(r);
  return out;
}

}  // namespace vmmkit
