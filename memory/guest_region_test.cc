#include "memory/guest_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

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
  } else if (r.ok()) {
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
