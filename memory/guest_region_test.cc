#include "memory/guest_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "base/scoped_fd.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
constexpr uint64_t kMax = ~uint64_t{0};

TEST(GuestRegionTest, MemfdRegionIsSharedThroughItsFd) {
  ASSERT_OK_AND_ASSIGN(auto r, GuestRegion::Create(GuestAddress(0x100000), 0x4000));
  EXPECT_EQ(r->start(), GuestAddress(0x100000));
  EXPECT_EQ(r->size(), 0x4000u);
  EXPECT_EQ(r->last(), GuestAddress(0x103fff));
  EXPECT_EQ(r->backing(), GuestRegionBacking::kMemfd);
  ASSERT_GE(r->fd(), 0);
  r->host_address()[0x1234] = 0x5a;
  uint8_t byte = 0;
  ASSERT_EQ(::pread(r->fd(), &byte, 1, 0x1234), 1);
  EXPECT_EQ(byte, 0x5a);
  // Sealed: nobody holding the fd can shrink the memory under the guest.
  EXPECT_NE(::ftruncate(r->fd(), 0x1000), 0);
}

TEST(GuestRegionTest, AnonymousRegionHasNoFd) {
  ASSERT_OK_AND_ASSIGN(auto r, GuestRegion::Create(GuestAddress(0), 0x1000,
                                                   {.backing = GuestRegionBacking::kAnonymous}));
  EXPECT_EQ(r->fd(), -1);
  r->host_address()[0xfff] = 1;  // The whole range is mapped.
  EXPECT_EQ(r->host_address()[0], 0);
}

TEST(GuestRegionTest, ContainsAtBothEdges) {
  ASSERT_OK_AND_ASSIGN(auto r, GuestRegion::Create(GuestAddress(0x2000), 0x1000));
  EXPECT_FALSE(r->Contains(GuestAddress(0x1fff)));
  EXPECT_TRUE(r->Contains(GuestAddress(0x2000)));
  EXPECT_TRUE(r->Contains(GuestAddress(0x2fff)));
  EXPECT_FALSE(r->Contains(GuestAddress(0x3000)));
}

TEST(GuestRegionTest, RegionMayEndExactlyAt2To64) {
  ASSERT_OK_AND_ASSIGN(auto r, GuestRegion::Create(GuestAddress(kMax - 0xfff), 0x1000));
  EXPECT_EQ(r->last(), GuestAddress(kMax));
  EXPECT_TRUE(r->Contains(GuestAddress(kMax)));
}

TEST(GuestRegionTest, RejectsBadGeometry) {
  EXPECT_THAT(GuestRegion::Create(GuestAddress(0), 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("size is zero")));
  EXPECT_THAT(
      GuestRegion::Create(GuestAddress(0x800), 0x1000),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiples of the page size")));
  EXPECT_THAT(
      GuestRegion::Create(GuestAddress(0), 0x1800),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiples of the page size")));
  EXPECT_THAT(GuestRegion::Create(GuestAddress(kMax - 0xfff), 0x2000),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("extends past 2^64")));
  EXPECT_THAT(GuestRegion::Create(GuestAddress(0x1000), 0x1000,
                                  {.backing = GuestRegionBacking::kMemfdHugetlb}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0x200000")));
}

TEST(GuestRegionTest, NoreserveAllowsMoreThanPhysicalMemory) {
  // 64 GiB of address space on a 24 GiB machine: only possible because nothing is committed.
  ASSERT_OK_AND_ASSIGN(auto r, GuestRegion::Create(GuestAddress(0), uint64_t{64} << 30));
  r->host_address()[(uint64_t{64} << 30) - 1] = 7;
  EXPECT_EQ(r->host_address()[(uint64_t{64} << 30) - 1], 7);
}

// The lines of /proc/self/maps that mention `needle`.
int MapsLinesWith(const std::string& needle) {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) n += line.find(needle) != std::string::npos;
  return n;
}

TEST(GuestRegionTest, HostAddressAgreesWithGuestAddressModulo2MiB) {
  // Guest and host addresses must agree in their low 21 bits for 2 MiB pages (KVM's large pages,
  // IOMMU superpages); the region's start may itself be unaligned.
  constexpr uint64_t k2M = 2 << 20;
  for (uint64_t start : {uint64_t{0}, uint64_t{0x100000}, uint64_t{0x7ff000}, uint64_t{1} << 32}) {
    for (GuestRegionBacking backing :
         {GuestRegionBacking::kAnonymous, GuestRegionBacking::kMemfd}) {
      ASSERT_OK_AND_ASSIGN(auto r, GuestRegion::Create(GuestAddress(start), 3 * k2M,
                                                       {.backing = backing, .name = "align-test"}));
      EXPECT_EQ(reinterpret_cast<uintptr_t>(r->host_address()) % k2M, start % k2M)
          << "start " << start << " backing " << static_cast<int>(backing);
      r->host_address()[0] = 1;  // Both ends are mapped and writable.
      r->host_address()[3 * k2M - 1] = 2;
      EXPECT_EQ(r->host_address()[0] + r->host_address()[3 * k2M - 1], 3);
    }
  }
}

TEST(GuestRegionTest, AlignmentSlackIsReturned) {
  // The 2 MiB of slack reserved for alignment is unmapped again: the memfd region is exactly one
  // mapping of its size, and an anonymous region leaves no PROT_NONE reservation behind.
  const int before = MapsLinesWith("---p 00000000 00:00 0");
  ASSERT_OK_AND_ASSIGN(auto r, GuestRegion::Create(GuestAddress(0), 4 << 20,
                                                   {.backing = GuestRegionBacking::kAnonymous}));
  ASSERT_OK_AND_ASSIGN(auto m,
                       GuestRegion::Create(GuestAddress(0), 4 << 20, {.name = "slack-test"}));
  EXPECT_EQ(MapsLinesWith("---p 00000000 00:00 0"), before);
  EXPECT_EQ(MapsLinesWith("memfd:slack-test"), 1);
  const uintptr_t host = reinterpret_cast<uintptr_t>(m->host_address());
  std::ifstream maps("/proc/self/maps");
  std::string first;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("memfd:slack-test") != std::string::npos) first = line;
  }
  uintptr_t begin = 0, end = 0;
  ASSERT_EQ(std::sscanf(first.c_str(), "%lx-%lx", &begin, &end), 2);
  EXPECT_EQ(begin, host);
  EXPECT_EQ(end - begin, uintptr_t{4} << 20);
}

int HugePagesFree() {
  std::ifstream in("/proc/sys/vm/nr_hugepages");
  int n = 0;
  in >> n;
  return n;
}

TEST(GuestRegionTest, HugetlbEitherMapsOrSaysWhy) {
  auto r =
      GuestRegion::Create(GuestAddress(0), 2 << 20, {.backing = GuestRegionBacking::kMemfdHugetlb});
  if (HugePagesFree() == 0) {
    // The pool is empty here: creation must fail now, naming the pool, not SIGBUS on first touch.
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("nr_hugepages")));
  } else {
    // Free pages in the pool: the region must come from it.
    ASSERT_THAT(r, IsOk());
    (*r)->host_address()[0] = 1;
    EXPECT_EQ((*r)->page_size(), 2u << 20);
  }
}

TEST(GuestRegionTest, MemfdNameShowsInMaps) {
  ASSERT_OK_AND_ASSIGN(auto r,
                       GuestRegion::Create(GuestAddress(0), 0x1000, {.name = "test-ram-xyz"}));
  std::ifstream maps("/proc/self/maps");
  std::string all((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  EXPECT_THAT(all, HasSubstr("memfd:test-ram-xyz"));
}

TEST(GuestRegionTest, FromMappingWrapsMemoryItDoesNotOwn) {
  // The "device" mapping: owned elsewhere, released only when the last region wrapping it goes.
  void* host = ::mmap(nullptr, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(host, MAP_FAILED);
  bool released = false;
  std::shared_ptr<const void> owner(host, [&](const void* p) {
    released = true;
    ::munmap(const_cast<void*>(p), 0x2000);
  });
  {
    ASSERT_OK_AND_ASSIGN(auto r, GuestRegion::FromMapping(GuestAddress(0xc0000000), 0x2000,
                                                          static_cast<uint8_t*>(host), owner));
    owner.reset();
    EXPECT_EQ(r->backing(), GuestRegionBacking::kExternal);
    EXPECT_EQ(r->fd(), -1);
    EXPECT_EQ(r->start(), GuestAddress(0xc0000000));
    r->host_address()[0x1fff] = 7;  // Still mapped: the region holds the owner.
    EXPECT_FALSE(released);
  }
  EXPECT_TRUE(released);
}

// How many of the pages of [host, host + size) are resident.
size_t ResidentPages(const uint8_t* host, uint64_t size) {
  std::vector<unsigned char> vec(size / 4096);
  if (::mincore(const_cast<uint8_t*>(host), size, vec.data()) != 0) return ~size_t{0};
  size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

TEST(GuestRegionTest, PrefaultMakesEveryPageResident) {
  constexpr uint64_t kSize = 8 << 20;
  for (GuestRegionBacking backing : {GuestRegionBacking::kAnonymous, GuestRegionBacking::kMemfd}) {
    ASSERT_OK_AND_ASSIGN(auto lazy,
                         GuestRegion::Create(GuestAddress(0), kSize, {.backing = backing}));
    EXPECT_EQ(ResidentPages(lazy->host_address(), kSize), 0u);
    ASSERT_OK_AND_ASSIGN(auto eager, GuestRegion::Create(GuestAddress(0), kSize,
                                                         {.backing = backing, .prefault = true}));
    EXPECT_EQ(ResidentPages(eager->host_address(), kSize), kSize / 4096);
    EXPECT_EQ(eager->host_address()[kSize - 1], 0);  // Zeroed, as a first touch would leave it.
    // Later, on any region: what the guest wrote stays.
    lazy->host_address()[0x1000] = 9;
    ASSERT_OK(lazy->Prefault());
    EXPECT_EQ(ResidentPages(lazy->host_address(), kSize), kSize / 4096);
    EXPECT_EQ(lazy->host_address()[0x1000], 9);
  }
}

TEST(GuestRegionTest, PrefaultSaysWhenAPageCannotBeBacked) {
  // A shared file mapping longer than its file: the second page has nothing behind it (an access
  // would be SIGBUS); Prefault reports it instead.
  ScopedFd fd(::memfd_create("short", MFD_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 0x1000), 0);
  void* host = ::mmap(nullptr, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  ASSERT_NE(host, MAP_FAILED);
  std::shared_ptr<const void> owner(host,
                                    [](const void* p) { ::munmap(const_cast<void*>(p), 0x2000); });
  ASSERT_OK_AND_ASSIGN(auto r, GuestRegion::FromMapping(GuestAddress(0x10000), 0x2000,
                                                        static_cast<uint8_t*>(host), owner));
  EXPECT_THAT(r->Prefault(), StatusIs(absl::StatusCode::kInvalidArgument,
                                      AllOf(HasSubstr("prefault 0x2000 bytes of guest RAM at"),
                                            HasSubstr("cannot be backed"))));
}

TEST(GuestRegionTest, FromMappingRejectsBadArguments) {
  alignas(4096) static uint8_t page[8192];
  EXPECT_THAT(GuestRegion::FromMapping(GuestAddress(0), 0, page, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("size is zero")));
  EXPECT_THAT(GuestRegion::FromMapping(GuestAddress(0), 0x1000, nullptr, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not page-aligned")));
  EXPECT_THAT(GuestRegion::FromMapping(GuestAddress(0), 0x1000, page + 1, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not page-aligned")));
  EXPECT_THAT(GuestRegion::FromMapping(GuestAddress(0x800), 0x1000, page, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiples of the page")));
  EXPECT_THAT(GuestRegion::FromMapping(GuestAddress(kMax - 0xfff), 0x2000, page, nullptr),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("past 2^64")));
}

}  // namespace
}  // namespace vmmkit
