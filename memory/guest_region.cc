#include "memory/guest_region.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit {
namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kHugePageSize = 2 << 20;

std::string RangeString(GuestAddress start, uint64_t size) {
  return absl::StrCat("[", start.ToString(), ", +", Hex(size), ")");
}

// Maps `size` bytes at a host address congruent to the guest address `start` modulo 2 MiB. Only
// then can a 2 MiB (transparent) huge page back a 2 MiB guest page: KVM maps guest memory with
// large pages, and the IOMMU DMA-maps it with superpages, only where guest and host addresses agree
// in their low 21 bits. mmap alone gives 4 KiB alignment; so reserve 2 MiB more, map inside, and
// return the slack. Returns MAP_FAILED with errno set, as mmap does.
void* MapAligned(GuestAddress start, uint64_t size, int prot, int flags, int fd) {
  if (size < kHugePageSize) return ::mmap(nullptr, size, prot, flags, fd, 0);
  const uint64_t span = size + kHugePageSize;
  void* reserved =
      ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return MAP_FAILED;
  const uintptr_t base = reinterpret_cast<uintptr_t>(reserved);
  const uintptr_t want = start.raw() % kHugePageSize;
  uintptr_t at = (base & ~(kHugePageSize - 1)) + want;
  if (at < base) at += kHugePageSize;
  void* host = ::mmap(reinterpret_cast<void*>(at), size, prot, flags | MAP_FIXED, fd, 0);
  if (host == MAP_FAILED) {
    const int saved = errno;
    ::munmap(reserved, span);
    errno = saved;
    return MAP_FAILED;
  }
  if (at > base) ::munmap(reserved, at - base);
  if (base + span > at + size)
    ::munmap(reinterpret_cast<void*>(at + size), base + span - at - size);
  return host;
}

}  // namespace

absl::StatusOr<std::shared_ptr<GuestRegion>> GuestRegion::Create(
    GuestAddress start, uint64_t size, const GuestRegionOptions& options) {
  const uint64_t page =
      options.backing == GuestRegionBacking::kMemfdHugetlb ? kHugePageSize : kPageSize;
  const std::string what = absl::StrCat("guest region ", RangeString(start, size));
  if (size == 0) return absl::InvalidArgumentError(absl::StrCat(what, ": size is zero"));
  if (!start.IsAligned(page) || size % page != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": start and size must be multiples of the page size ", Hex(page)));
  }
  if (!RangeLast(start.raw(), size)) {
    return absl::OutOfRangeError(absl::StrCat(what, ": extends past 2^64"));
  }
  if (size > static_cast<uint64_t>(PTRDIFF_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": larger than the host address space"));
  }

  ScopedFd fd;
  int prot = PROT_READ | PROT_WRITE;
  // hugetlb pages are always reserved at mmap time: with MAP_NORESERVE an exhausted pool would
  // surface later as SIGBUS on first touch (possibly by the guest) instead of an error here.
  int flags =
      options.noreserve && options.backing != GuestRegionBacking::kMemfdHugetlb ? MAP_NORESERVE : 0;
  if (options.backing == GuestRegionBacking::kAnonymous) {
    flags |= MAP_PRIVATE | MAP_ANONYMOUS;
  } else {
    unsigned int mfd_flags = MFD_CLOEXEC;
    if (options.backing == GuestRegionBacking::kMemfdHugetlb) {
      mfd_flags |= MFD_HUGETLB | MFD_HUGE_2MB;
    } else {
      // Sealing lets a consumer that receives the fd trust that it cannot shrink under it.
      mfd_flags |= MFD_ALLOW_SEALING;
    }
    fd.reset(::memfd_create(options.name.c_str(), mfd_flags));
    if (!fd.valid()) {
      return ErrnoStatus(errno, what, ": memfd_create(", options.name, ")");
    }
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      return ErrnoStatus(errno, what, ": ftruncate memfd to ", Hex(size));
    }
    if (options.backing == GuestRegionBacking::kMemfd &&
        ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      return ErrnoStatus(errno, what, ": F_ADD_SEALS on memfd");
    }
    flags |= MAP_SHARED;
  }
  void* host = MapAligned(start, size, prot, flags, fd.get());
  if (host == MAP_FAILED) {
    absl::Status s = ErrnoStatus(errno, what, ": mmap ", Hex(size), " bytes");
    if (options.backing == GuestRegionBacking::kMemfdHugetlb) {
      return absl::Status(s.code(), absl::StrCat(s.message(),
                                                 " (is the 2 MiB hugetlb pool large enough? see "
                                                 "/proc/sys/vm/nr_hugepages)"));
    }
    return s;
  }
  if (options.backing == GuestRegionBacking::kAnonymous) {
    // Advice only: fewer page faults and TLB misses, most of all for nested guests. Where THP is
    // off, the memory simply stays in 4 KiB pages.
    (void)::madvise(host, size, MADV_HUGEPAGE);
  }
  std::shared_ptr<GuestRegion> region(new GuestRegion(start, size, static_cast<uint8_t*>(host),
                                                      std::move(fd), options.backing, page));
  if (options.prefault) {
    if (absl::Status s = region->Prefault(); !s.ok()) {
      return Prefixed(s, what);
    }
  }
  return region;
}

absl::Status GuestRegion::Prefault() const {
  if (::madvise(host_, size_, MADV_POPULATE_WRITE) == 0) return absl::OkStatus();
  const int err = errno;
  const char* why = err == ENOMEM   ? " (out of memory)"
                    : err == EFAULT ? " (a page cannot be backed: is the backing file shorter?)"
                    : err == EINVAL ? " (not for this kind of mapping, or Linux before 5.14)"
                                    : "";
  absl::Status s =
      ErrnoStatus(err, "prefault ", Hex(size_), " bytes of guest RAM at ", start_.ToString(), why);
  // Out of memory is what a caller can act on (a smaller guest, hugetlb pages, less overcommit).
  if (err == ENOMEM) return absl::ResourceExhaustedError(s.message());
  return s;
}

absl::StatusOr<std::shared_ptr<GuestRegion>> GuestRegion::FromMapping(
    GuestAddress start, uint64_t size, uint8_t* host, std::shared_ptr<const void> owner) {
  const std::string what = absl::StrCat("external guest region ", RangeString(start, size));
  if (size == 0) return absl::InvalidArgumentError(absl::StrCat(what, ": size is zero"));
  if (host == nullptr || reinterpret_cast<uintptr_t>(host) % kPageSize != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": host address is null or not page-aligned"));
  }
  if (!start.IsAligned(kPageSize) || size % kPageSize != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": start and size must be multiples of the page size ", Hex(kPageSize)));
  }
  if (!RangeLast(start.raw(), size)) {
    return absl::OutOfRangeError(absl::StrCat(what, ": extends past 2^64"));
  }
  std::shared_ptr<GuestRegion> r(
      new GuestRegion(start, size, host, ScopedFd(), GuestRegionBacking::kExternal, kPageSize));
  r->owner_ = std::move(owner);
  return r;
}

GuestRegion::~GuestRegion() {
  if (backing_ != GuestRegionBacking::kExternal) ::munmap(host_, size_);
}

}  // namespace vmmkit
