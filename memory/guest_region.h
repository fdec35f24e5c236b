// File: memory/guest_region.h
// -----------------------------------------------------------------------------
// GuestRegion is one contiguous range of guest RAM: a host mapping of `size` bytes that the guest
// sees at `start`. By default the mapping is backed by a memfd, so it can be shared with another
// process (vhost-user, a snapshot writer) and DMA-mapped through VFIO; anonymous memory and
// hugetlb-backed memfds are options. Regions are handed out as shared_ptr: whoever maps the host
// memory elsewhere (a KVM slot, an IOMMU mapping) keeps a reference, so the mapping outlives them.
//
//   ASSIGN_OR_RETURN(auto ram, GuestRegion::Create(GuestAddress(0), 512 << 20));
//   uint8_t* host = ram->host_address();   // valid while `ram` (or a copy of it) is alive

#ifndef VMMKIT_MEMORY_GUEST_REGION_H_
#define VMMKIT_MEMORY_GUEST_REGION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "memory/address.h"

namespace vmmkit {

enum class GuestRegionBacking {
  kMemfd,         // memfd_create(): shareable by fd, 4 KiB pages. The default.
  kMemfdHugetlb,  // memfd_create(MFD_HUGETLB | MFD_HUGE_2MB): 2 MiB pages from the hugetlb pool.
  kAnonymous,     // MAP_ANONYMOUS | MAP_PRIVATE: not shareable, no fd; transparent huge
                  // pages requested (MADV_HUGEPAGE), which shmem-backed memfds do not get.
  kExternal,      // A mapping someone else made and owns (FromMapping), e.g. a device's BAR.
};

struct GuestRegionOptions {
  GuestRegionBacking backing = GuestRegionBacking::kMemfd;
  // MAP_NORESERVE: do not reserve swap for the whole region up front; pages are committed as the
  // guest touches them. Guests routinely get more RAM than they use. Ignored for hugetlb, whose
  // pages are reserved at creation so that an empty pool is an error now, not a SIGBUS later.
  bool noreserve = true;
  // The memfd's name; shows up in /proc/<pid>/maps as /memfd:<name>.
  std::string name = "vmmkit-guest-ram";
  // Fault in every page at creation (see GuestRegion::Prefault); creation fails if memory runs
  // out. Off by default: guests seldom touch all their RAM, and untouched pages cost nothing.
  bool prefault = false;
};

class GuestRegion {
 public:
  // Maps `size` bytes for guest addresses [start, start + size). `start` and `size` must be
  // multiples of the backing's page size (4 KiB, or 2 MiB for hugetlb), size > 0, and the range
  // must not extend past 2^64.
  static absl::StatusOr<std::shared_ptr<GuestRegion>> Create(
      GuestAddress start, uint64_t size, const GuestRegionOptions& options = {});

  // Wraps a host mapping made elsewhere (a VFIO BAR mmap, say) so the guest can see it at `start`
  // through a KVM slot. `owner` keeps the mapping alive; the region never unmaps it. Same
  // alignment rules as Create (4 KiB); `host` must be page-aligned and non-null.
  static absl::StatusOr<std::shared_ptr<GuestRegion>> FromMapping(
      GuestAddress start, uint64_t size, uint8_t* host, std::shared_ptr<const void> owner);

  GuestRegion(const GuestRegion&) = delete;
  GuestRegion& operator=(const GuestRegion&) = delete;
  ~GuestRegion();  // Unmaps (unless external); the memfd closes with it.

  GuestAddress start() const { return start_; }
  uint64_t size() const { return size_; }
  // The inclusive last guest address (a region may end exactly at 2^64).
  GuestAddress last() const { return GuestAddress(start_.raw() + (size_ - 1)); }
  bool Contains(GuestAddress addr) const { return addr >= start_ && addr <= last(); }

  // The host virtual address of `start()`; valid for the lifetime of this object.
  uint8_t* host_address() const { return host_; }
  // The backing memfd, or -1 for anonymous memory. Offset 0 of the fd maps `start()`.
  int fd() const { return fd_.get(); }
  GuestRegionBacking backing() const { return backing_; }
  uint64_t page_size() const { return page_size_; }

  // Allocates (zeroes) every page of the region now, as a write would, so that neither the guest
  // nor a DMA pin pays for it later: VFIO pins all guest RAM when the first passthrough device
  // comes, and faulting in what the guest never touched then is most of that device's attach time.
  // Pages already there are left as they are. Running out of memory is RESOURCE_EXHAUSTED (where a
  // plain write would summon the OOM killer); a page that cannot be backed (a file mapping shorter
  // than the region) fails too. Needs Linux 5.14 (MADV_POPULATE_WRITE).
  absl::Status Prefault() const;

 private:
  GuestRegion(GuestAddress start, uint64_t size, uint8_t* host, ScopedFd fd,
              GuestRegionBacking backing, uint64_t page_size)
      : start_(start),
        size_(size),
        host_(host),
        fd_(std::move(fd)),
        backing_(backing),
        page_size_(page_size) {}

  GuestAddress start_;
  uint64_t size_;
  uint8_t* host_;
  ScopedFd fd_;
  GuestRegionBacking backing_;
  uint64_t page_size_;
  std::shared_ptr<const void> owner_;  // kExternal: whoever owns the mapping.
};

}  // namespace vmmkit

#endif  // VMMKIT_MEMORY_GUEST_REGION_H_
