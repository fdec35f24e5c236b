#include "vhost/device_iotlb.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "memory/guest_region.h"

namespace vmmkit::vhost {
namespace {

// A translation is retried this often when UNMAPs keep overtaking it: a guest unmapping without
// pause starves only its own device, which then stops as on a failed translation.
constexpr int kAttempts = 64;

}  // namespace

DeviceIotlb::DeviceIotlb(Translate translate, const GuestMemory& memory)
    : translate_(std::move(translate)), memory_(memory) {}

void DeviceIotlb::Add(const VhostDevice* device) {
  MutexLock lock(mu_);
  devices_.push_back({.device = device});
}

DeviceIotlb::Served* DeviceIotlb::Find(const VhostDevice& device) {
  for (Served& s : devices_) {
    if (s.device == &device) return &s;
  }
  return nullptr;
}

absl::Status DeviceIotlb::Start(const VhostDevice& device, bool platform) {
  // Misses of an earlier life: the rings they were for are gone.
  while (true) {
    ASSIGN_OR_RETURN(std::optional<IotlbMessage> m, device.ReadIotlb());
    if (!m) break;
  }
  bool identity = false;
  {
    MutexLock lock(mu_);
    Served* s = Find(device);
    if (s == nullptr) return absl::InvalidArgumentError("vhost IOTLB: a device it does not serve");
    s->platform = platform;
    identity = !platform && s->iotlb_on;
    s->iotlb_on |= platform;
  }
  if (!identity) return absl::OkStatus();
  // Guest RAM one-to-one: the driver uses guest-physical addresses, the kernel still asks its
  // IOTLB.
  RETURN_IF_ERROR(device.WriteIotlb({.type = IotlbMessage::kInvalidate,
                                     .iova = 0,
                                     .size = std::numeric_limits<uint64_t>::max()}));
  for (const std::shared_ptr<GuestRegion>& r : memory_.regions()) {
    RETURN_IF_ERROR(device.WriteIotlb({.type = IotlbMessage::kUpdate,
                                       .iova = r->start().raw(),
                                       .size = r->size(),
                                       .uaddr = reinterpret_cast<uint64_t>(r->host_address()),
                                       .perm = IotlbMessage::kReadWrite}));
  }
  return absl::OkStatus();
}

absl::Status DeviceIotlb::Map(const VhostDevice& device, uint64_t iova, uint8_t access) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    uint64_t generation;
    {
      MutexLock lock(mu_);
      generation = generation_;
    }
    absl::StatusOr<IommuPage> e = translate_(iova, access);
    if (!e.ok()) {
      MutexLock lock(mu_);
      ++stats_.faults;
      return e.status();
    }
    // The part of the entry's page that is guest RAM, in the same region as `iova`'s byte.
    if (iova < e->iova || iova - e->iova >= e->size) {
      MutexLock lock(mu_);
      ++stats_.faults;
      return absl::InternalError(absl::StrCat("vhost IOTLB: the translation of 0x", absl::Hex(iova),
                                              " does not cover it"));
    }
    const uint64_t offset = iova - e->iova;
    const uint64_t gpa = e->gpa + offset;
    const GuestRegion* r = memory_.FindRegion(GuestAddress(gpa));
    if (r == nullptr) {
      MutexLock lock(mu_);
      ++stats_.faults;
      return absl::OutOfRangeError(absl::StrCat("vhost IOTLB: IOVA 0x", absl::Hex(iova),
                                                " maps to 0x", absl::Hex(gpa),
                                                ", which is not guest RAM"));
    }
    const uint64_t into_region = gpa - r->start().raw();
    const uint64_t before = std::min(offset, into_region);
    const uint64_t after = std::min(e->size - offset, r->size() - into_region);
    const IotlbMessage update = {
        .type = IotlbMessage::kUpdate,
        .iova = iova - before,
        .size = before + after,
        .uaddr = reinterpret_cast<uint64_t>(r->host_address()) + into_region - before,
        .perm = e->perm};
    MutexLock lock(mu_);
    if (generation != generation_) continue;  // An UNMAP overtook it: translate again.
    ++stats_.updates;
    return device.WriteIotlb(update);
  }
  MutexLock lock(mu_);
  ++stats_.faults;
  return absl::UnavailableError(absl::StrCat("vhost IOTLB: IOVA 0x", absl::Hex(iova),
                                             " unmapped under every translation (", kAttempts,
                                             " tries)"));
}

absl::Status DeviceIotlb::Serve(const VhostDevice& device) {
  while (true) {
    ASSIGN_OR_RETURN(std::optional<IotlbMessage> m, device.ReadIotlb());
    if (!m) return absl::OkStatus();
    if (m->type != IotlbMessage::kMiss) continue;  // The kernel sends nothing else to vmm.
    {
      MutexLock lock(mu_);
      ++stats_.misses;
    }
    RETURN_IF_ERROR(
        Map(device, m->iova,
            (m->perm & IotlbMessage::kWrite) != 0 ? IotlbMessage::kWrite : IotlbMessage::kRead));
  }
}

void DeviceIotlb::Stop(const VhostDevice& device) {
  MutexLock lock(mu_);
  if (Served* s = Find(device)) s->platform = false;
}

void DeviceIotlb::Unmap(uint64_t iova, uint64_t size) {
  MutexLock lock(mu_);
  ++generation_;
  for (const Served& s : devices_) {
    if (!s.platform) continue;
    ++stats_.invalidations;
    if (absl::Status st =
            s.device->WriteIotlb({.type = IotlbMessage::kInvalidate, .iova = iova, .size = size});
        !st.ok()) {
      log_.Warning("vhost IOTLB: ", st.message());
    }
  }
}

DeviceIotlb::Stats DeviceIotlb::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

}  // namespace vmmkit::vhost
