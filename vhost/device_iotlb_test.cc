#include "vhost/device_iotlb.h"

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <map>
#include <optional>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/guest_memory.h"

namespace vmmkit::vhost {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t kPage = 4096;

// A vhost device whose fd is one end of a socket pair: the test plays the kernel at the other.
class FakeVhost : public VhostDevice {
 public:
  explicit FakeVhost(ScopedFd fd) : VhostDevice(std::move(fd), "fake vhost") {}
};

// Guest RAM in two regions ([0, 1 MiB) and [4 MiB, 5 MiB)), a page table the test fills, and a
// device IOTLB over them.
class DeviceIotlbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(GuestMemory m, GuestMemory::CreateRam({{GuestAddress(0), 1 << 20},
                                                                {GuestAddress(4 << 20), 1 << 20}}));
    memory_.emplace(std::move(m));
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    device_.emplace(ScopedFd(sv[0]));
    kernel_ = ScopedFd(sv[1]);
    iotlb_.emplace(
        [this](uint64_t iova, uint8_t access) -> absl::StatusOr<IommuPage> {
          ++translations_;
          absl::StatusOr<IommuPage> result = Lookup(iova, access);
          if (after_translate_) {
            std::function<void()> hook = std::move(after_translate_);
            after_translate_ = nullptr;
            hook();
          }
          return result;
        },
        *memory_);
    iotlb_->Add(&*device_);
  }
  absl::StatusOr<IommuPage> Lookup(uint64_t iova, uint8_t access) {
    auto it = pages_.upper_bound(iova);
    if (it == pages_.begin()) return absl::NotFoundError("unmapped");
    --it;
    if (iova >= it->first + it->second.size) return absl::NotFoundError("unmapped");
    if ((it->second.perm & access) != access) return absl::PermissionDeniedError("read-only");
    return it->second;
  }
  void MapPage(uint64_t iova, uint64_t gpa, uint8_t perm, uint64_t size = kPage) {
    pages_[iova] = {.iova = iova, .size = size, .gpa = gpa, .perm = perm};
  }
  // What the device wrote to the kernel, decoded.
  std::vector<IotlbMessage> Written() {
    std::vector<IotlbMessage> out;
    std::array<uint8_t, kIotlbWireSize> wire;
    while (true) {
      const ssize_t n = ::read(kernel_.get(), wire.data(), wire.size());
      if (n <= 0) break;
      absl::StatusOr<IotlbMessage> m =
          DecodeIotlb(absl::MakeConstSpan(wire.data(), static_cast<size_t>(n)));
      EXPECT_OK(m.status());
      if (m.ok()) out.push_back(*m);
    }
    return out;
  }
  // The kernel asks about `iova`.
  void Miss(uint64_t iova, uint8_t perm) {
    const auto wire = EncodeIotlb({.type = IotlbMessage::kMiss, .iova = iova, .perm = perm},
                                  /*v2=*/false);
    ASSERT_EQ(::write(kernel_.get(), wire.data(), wire.size()), static_cast<ssize_t>(wire.size()));
  }
  uint64_t Host(uint64_t gpa) {
    return reinterpret_cast<uint64_t>(*memory_->Translate(GuestAddress(gpa), 1));
  }
  void Unmap(uint64_t iova, uint64_t size) {
    pages_.erase(iova);
    iotlb_->Unmap(iova, size);
  }

  std::optional<GuestMemory> memory_;
  std::optional<FakeVhost> device_;
  ScopedFd kernel_;
  std::map<uint64_t, IommuPage> pages_;
  std::function<void()> after_translate_;  // Runs once, inside the next translation.
  int translations_ = 0;
  std::optional<DeviceIotlb> iotlb_;
};

TEST(IotlbWireTest, RoundTripsAndRefusesWhatIsNotAnIotlbMessage) {
  const IotlbMessage m = {.type = IotlbMessage::kUpdate,
                          .iova = 0x1000,
                          .size = 0x2000,
                          .uaddr = 0x7f0000001000,
                          .perm = IotlbMessage::kReadWrite};
  for (bool v2 : {false, true}) {
    const auto wire = EncodeIotlb(m, v2);
    EXPECT_EQ(wire[0], v2 ? 2 : 1);  // The message kind.
    EXPECT_EQ(wire[8], 0x00);        // iova at 8 (little-endian).
    EXPECT_EQ(wire[9], 0x10);
    EXPECT_EQ(wire[16 + 1], 0x20);                  // size at 16.
    EXPECT_EQ(wire[32], IotlbMessage::kReadWrite);  // perm at 32, type at 33.
    EXPECT_EQ(wire[33], IotlbMessage::kUpdate);
    EXPECT_THAT(DecodeIotlb(wire), IsOkAndHolds(m));
  }
  auto wire = EncodeIotlb(m, true);
  EXPECT_THAT(DecodeIotlb(absl::MakeConstSpan(wire.data(), 71)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  wire[4] = 1;  // Address space 1.
  EXPECT_THAT(DecodeIotlb(wire), StatusIs(absl::StatusCode::kInvalidArgument));
  wire[4] = 0;
  wire[0] = 7;  // Not an IOTLB message.
  EXPECT_THAT(DecodeIotlb(wire), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(DeviceIotlbTest, AMissIsAnsweredWithTheWholePageAsVmmsAddress) {
  ASSERT_OK(iotlb_->Start(*device_, /*platform=*/true));
  MapPage(0x10000, 0x3000, IotlbMessage::kReadWrite);
  Miss(0x10123, IotlbMessage::kWrite);
  ASSERT_OK(iotlb_->Serve(*device_));
  EXPECT_THAT(Written(), ElementsAre(IotlbMessage{.type = IotlbMessage::kUpdate,
                                                  .iova = 0x10000,
                                                  .size = kPage,
                                                  .uaddr = Host(0x3000),
                                                  .perm = IotlbMessage::kReadWrite}));
  EXPECT_EQ(iotlb_->stats().misses, 1u);
  EXPECT_EQ(iotlb_->stats().updates, 1u);
}

TEST_F(DeviceIotlbTest, ALargePageIsCutToTheRamRegionItLandsIn) {
  ASSERT_OK(iotlb_->Start(*device_, true));
  // A 2 MiB page at IOVA 2 MiB onto guest-physical [0, 2 MiB): only [0, 1 MiB) is RAM.
  MapPage(2 << 20, 0, IotlbMessage::kRead, 2 << 20);
  ASSERT_OK(iotlb_->Map(*device_, ((2 << 20) + 0x5000), IotlbMessage::kRead));
  EXPECT_THAT(Written(), ElementsAre(IotlbMessage{.type = IotlbMessage::kUpdate,
                                                  .iova = 2 << 20,
                                                  .size = 1 << 20,
                                                  .uaddr = Host(0),
                                                  .perm = IotlbMessage::kRead}));
}

TEST_F(DeviceIotlbTest, WhatTheIommuRefusesOrIsNotRamGetsNoAnswer) {
  ASSERT_OK(iotlb_->Start(*device_, true));
  Miss(0x20000, IotlbMessage::kRead);  // Unmapped.
  EXPECT_THAT(iotlb_->Serve(*device_), StatusIs(absl::StatusCode::kNotFound));
  MapPage(0x30000, 0x1000, IotlbMessage::kRead);
  EXPECT_THAT(iotlb_->Map(*device_, (0x30000), IotlbMessage::kWrite),
              StatusIs(absl::StatusCode::kPermissionDenied));
  MapPage(0x40000, 2 << 20, IotlbMessage::kReadWrite);  // Between the RAM regions.
  EXPECT_THAT(iotlb_->Map(*device_, (0x40000), IotlbMessage::kRead),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(Written(), IsEmpty());
  EXPECT_EQ(iotlb_->stats().faults, 3u);
}

TEST_F(DeviceIotlbTest, UnmapsBecomeInvalidationsOnlyWhileTheDeviceTranslates) {
  // Not started, or started without ACCESS_PLATFORM: nothing.
  Unmap(0x1000, kPage);
  ASSERT_OK(iotlb_->Start(*device_, false));
  Unmap(0x1000, kPage);
  EXPECT_THAT(Written(), IsEmpty());
  ASSERT_OK(iotlb_->Start(*device_, true));
  Unmap(0x1000, 2 * kPage);
  EXPECT_THAT(Written(),
              ElementsAre(IotlbMessage{
                  .type = IotlbMessage::kInvalidate, .iova = 0x1000, .size = 2 * kPage}));
  iotlb_->Stop(*device_);
  Unmap(0x1000, kPage);
  EXPECT_THAT(Written(), IsEmpty());
}

TEST_F(DeviceIotlbTest, AnAnswerOvertakenByAnUnmapIsTranslatedAgain) {
  ASSERT_OK(iotlb_->Start(*device_, true));
  MapPage(0x10000, 0x3000, IotlbMessage::kReadWrite);
  // The guest moves the page just after the first translation (as another vCPU would): that
  // translation's answer, page 0x3000, is stale before it could be written.
  after_translate_ = [&] {
    Unmap(0x10000, kPage);
    MapPage(0x10000, 0x7000, IotlbMessage::kReadWrite);
  };
  ASSERT_OK(iotlb_->Map(*device_, (0x10000), IotlbMessage::kRead));
  EXPECT_EQ(translations_, 2);
  EXPECT_THAT(
      Written(),
      ElementsAre(IotlbMessage{.type = IotlbMessage::kInvalidate, .iova = 0x10000, .size = kPage},
                  IotlbMessage{.type = IotlbMessage::kUpdate,
                               .iova = 0x10000,
                               .size = kPage,
                               .uaddr = Host(0x7000),
                               .perm = IotlbMessage::kReadWrite}));
}

TEST_F(DeviceIotlbTest, AnIotlbLeftOnServesGuestRamOneToOne) {
  ASSERT_OK(iotlb_->Start(*device_, true));
  // The next driver does not negotiate ACCESS_PLATFORM; the kernel's IOTLB stays on.
  ASSERT_OK(iotlb_->Start(*device_, false));
  EXPECT_THAT(
      Written(),
      ElementsAre(IotlbMessage{.type = IotlbMessage::kInvalidate, .iova = 0, .size = ~uint64_t{0}},
                  IotlbMessage{.type = IotlbMessage::kUpdate,
                               .iova = 0,
                               .size = 1 << 20,
                               .uaddr = Host(0),
                               .perm = IotlbMessage::kReadWrite},
                  IotlbMessage{.type = IotlbMessage::kUpdate,
                               .iova = 4 << 20,
                               .size = 1 << 20,
                               .uaddr = Host(4 << 20),
                               .perm = IotlbMessage::kReadWrite}));
}

TEST_F(DeviceIotlbTest, StartDropsMissesOfAnEarlierLife) {
  Miss(0x9000, IotlbMessage::kRead);
  ASSERT_OK(iotlb_->Start(*device_, true));
  ASSERT_OK(iotlb_->Serve(*device_));
  EXPECT_EQ(iotlb_->stats().misses, 0u);
  EXPECT_EQ(translations_, 0);
}

}  // namespace
}  // namespace vmmkit::vhost
