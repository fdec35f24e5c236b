#include "vhost/vhost.h"

#include <sys/mman.h>

#include <cstring>

#include "base/event_fd.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::vhost {
namespace {

using ::testing::HasSubstr;

// Where the kernel has no vhost (no module, no node) the tests say skipped.
#define OPEN_OR_SKIP(type, var)                                                             \
  absl::StatusOr<type> var##_or = type::Open();                                             \
  if (absl::IsNotFound(var##_or.status()) || absl::IsPermissionDenied(var##_or.status())) { \
    GTEST_SKIP() << "no vhost here: " << var##_or.status();                                 \
  }                                                                                         \
  ASSERT_OK(var##_or.status());                                                             \
  type& var = *var##_or

TEST(VhostNetTest, SetsUpARingOverThisProcessMemory) {
  OPEN_OR_SKIP(VhostNet, net);
  EXPECT_THAT(net.SetVringNum(0, 256), StatusIs(absl::StatusCode::kPermissionDenied,
                                                HasSubstr("VHOST_SET_VRING_NUM ring 0")))
      << "only the owner may drive it";
  ASSERT_OK(net.SetOwner());
  ASSERT_OK_AND_ASSIGN(uint64_t features, net.GetFeatures());
  EXPECT_NE(features & (uint64_t{1} << 32), 0u) << "VERSION_1";
  EXPECT_NE(features & (uint64_t{1} << 15), 0u) << "MRG_RXBUF";
  ASSERT_OK(net.SetFeatures(features & ~kFeatureNetVirtioNetHdr & ~kFeatureLogAll));
  void* ram = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ram, MAP_FAILED);
  const uint64_t host = reinterpret_cast<uint64_t>(ram);
  ASSERT_OK(net.SetMemTable({{.guest_phys_addr = 0, .size = 1 << 20, .userspace_addr = host}}));
  ASSERT_OK(net.SetVringNum(0, 256));
  EXPECT_THAT(net.SetVringNum(1, 3), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(net.SetVringBase(0, 0));
  ASSERT_OK(
      net.SetVringAddr({.index = 0, .desc = host, .avail = host + 0x1000, .used = host + 0x2000}));
  EXPECT_THAT(
      net.SetVringAddr({.index = 0, .desc = host, .avail = host + 0x1001, .used = host + 0x2000}),
      StatusIs(absl::StatusCode::kInvalidArgument))
      << "a misaligned avail ring";
  ASSERT_OK_AND_ASSIGN(EventFd kick, EventFd::Create());
  ASSERT_OK_AND_ASSIGN(EventFd call, EventFd::Create());
  ASSERT_OK(net.SetVringKick(0, kick.fd()));
  ASSERT_OK(net.SetVringCall(0, call.fd()));
  ASSERT_OK(net.SetVringErr(0, -1));
  ASSERT_OK_AND_ASSIGN(uint32_t base, net.GetVringBase(0));
  EXPECT_EQ(base, 0u);
  // Only a tap (or a packet socket) can back a ring.
  EXPECT_FALSE(net.SetBackend(0, kick.fd()).ok());
  EXPECT_OK(net.SetBackend(0, -1));
  ::munmap(ram, 1 << 20);
}

TEST(VhostVsockTest, RefusesReservedCids) {
  OPEN_OR_SKIP(VhostVsock, vsock);
  for (uint64_t cid :
       {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{0xffffffff}, uint64_t{1} << 32}) {
    EXPECT_THAT(vsock.SetGuestCid(cid), StatusIs(absl::StatusCode::kInvalidArgument)) << cid;
  }
  ASSERT_OK(vsock.SetOwner());
  EXPECT_OK(vsock.SetRunning(false));
}

}  // namespace
}  // namespace vmmkit::vhost
