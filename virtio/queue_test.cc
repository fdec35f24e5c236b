#include "virtio/queue.h"

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/dma_space.h"
#include "memory/guest_memory.h"
#include "virtio/testing/driver_queue.h"

namespace vmmkit::virtio {
namespace {

using testing::DriverQueue;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Used;

constexpr uint64_t kRamSize = 1 << 20;
constexpr GuestAddress kRings(0x1000);
constexpr GuestAddress kIndirect(0x8000);
constexpr GuestAddress kData(0x10000);

class SplitQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_.emplace(testing::TestGuestMemory(kRamSize));
    dma_.emplace(*memory_);
  }
  // A driver and the device's queue over the same rings.
  std::pair<DriverQueue, SplitQueue> Make(uint16_t size, bool event_idx = false,
                                          bool indirect = false) {
    DriverQueue driver(*memory_, kRings, size);
    absl::StatusOr<SplitQueue> q = SplitQueue::Create(driver.config(event_idx, indirect));
    if (!q.ok()) {
      ADD_FAILURE() << q.status();
      std::abort();
    }
    return {std::move(driver), std::move(*q)};
  }
  GuestAddress Data(uint64_t offset) { return GuestAddress(kData.raw() + offset); }

  std::optional<GuestMemory> memory_;
  std::optional<IdentityDmaSpace> dma_;
};

TEST_F(SplitQueueTest, CreateRefusesBadSizesAndAreas) {
  for (uint16_t size : std::initializer_list<uint16_t>{0, 3, 100, 65535}) {
    EXPECT_THAT(SplitQueue::Create({.size = size}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a power of two")))
        << size;
  }
  EXPECT_OK(SplitQueue::Create({.size = 32768}).status());
  EXPECT_THAT(SplitQueue::Create({.size = 8, .desc = Iova(0x1008)}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("descriptor table at 0x1008 is not 16-byte aligned")));
  EXPECT_THAT(SplitQueue::Create({.size = 8, .avail = Iova(0x1001)}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("avail ring")));
  EXPECT_THAT(SplitQueue::Create({.size = 8, .used = Iova(0x1002)}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("used ring")));
  EXPECT_THAT(SplitQueue::Create({.size = 8, .used = Iova(~uint64_t{0} - 15)}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wraps the address space")));
}

TEST_F(SplitQueueTest, PopsChainsReadableThenWritableAndReturnsThem) {
  auto made1 = Make(8);
  DriverQueue& driver = made1.first;
  SplitQueue& q = made1.second;
  ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> none, q.Pop(*dma_));
  EXPECT_FALSE(none.has_value());

  const uint16_t head =
      driver.Add({{Data(0), 16, false}, {Data(0x100), 512, true}, {Data(0x400), 1, true}});
  ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> chain, q.Pop(*dma_));
  ASSERT_TRUE(chain.has_value());
  EXPECT_EQ(chain->head, head);
  EXPECT_THAT(chain->readable, ElementsAre(Buffer{Iova(kData.raw()), 16}));
  EXPECT_THAT(chain->writable, ElementsAre(Buffer{Iova(kData.raw() + 0x100), 512},
                                           Buffer{Iova(kData.raw() + 0x400), 1}));
  EXPECT_EQ(chain->readable_bytes, 16u);
  EXPECT_EQ(chain->writable_bytes, 513u);
  ASSERT_OK_AND_ASSIGN(none, q.Pop(*dma_));
  EXPECT_FALSE(none.has_value());

  ASSERT_OK(q.AddUsed(*dma_, chain->head, 513));
  EXPECT_THAT(driver.TakeUsed(), ElementsAre(Used{head, 513}));
  EXPECT_EQ(q.next_avail(), 1);
  EXPECT_EQ(q.next_used(), 1);
}

TEST_F(SplitQueueTest, FollowsDirectDescriptorsIntoOneIndirectTable) {
  auto made2 = Make(8, /*event_idx=*/false, /*indirect=*/true);
  DriverQueue& driver = made2.first;
  SplitQueue& q = made2.second;
  driver.AddIndirect(kIndirect,
                     {{Data(0), 16, false}, {Data(0x10), 8, false}, {Data(0x20), 1, true}});
  ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> chain, q.Pop(*dma_));
  ASSERT_TRUE(chain.has_value());
  EXPECT_EQ(chain->readable.size(), 2u);
  EXPECT_THAT(chain->writable, ElementsAre(Buffer{Iova(kData.raw() + 0x20), 1}));

  // A direct descriptor, then the INDIRECT one it links to (its WRITE flag is ignored).
  const GuestAddress table(kIndirect.raw() + 0x100);
  ASSERT_OK(memory_->WriteObj(table, VirtqDesc{kData.raw(), 16, 0, 0}));
  driver.SetDesc(4, {kData.raw(), 4, kDescNext, 5});
  driver.SetDesc(5, {table.raw(), 16, kDescIndirect | kDescWrite, 0});
  driver.Publish(4);
  ASSERT_OK_AND_ASSIGN(chain, q.Pop(*dma_));
  ASSERT_TRUE(chain.has_value());
  EXPECT_THAT(chain->readable,
              ElementsAre(Buffer{Iova(kData.raw()), 4}, Buffer{Iova(kData.raw()), 16}));
}

TEST_F(SplitQueueTest, ZeroLengthBuffersAreKept) {
  auto made3 = Make(4);
  DriverQueue& driver = made3.first;
  SplitQueue& q = made3.second;
  driver.Add({{Data(0), 0, false}, {Data(0), 0, true}});
  ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> chain, q.Pop(*dma_));
  ASSERT_TRUE(chain.has_value());
  EXPECT_EQ(chain->readable.size() + chain->writable.size(), 2u);
}

TEST_F(SplitQueueTest, IndexesWrapAt65536) {
  auto made4 = Make(2);
  DriverQueue& driver = made4.first;
  SplitQueue& q = made4.second;
  for (uint32_t i = 0; i < 0x10000 + 5; ++i) {
    const uint16_t head = driver.Add({{Data(0), 1, true}});
    ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> chain, q.Pop(*dma_));
    ASSERT_TRUE(chain.has_value()) << i;
    ASSERT_EQ(chain->head, head);
    ASSERT_OK(q.AddUsed(*dma_, head, 1));
    ASSERT_THAT(driver.TakeUsed(), ElementsAre(Used{head, 1})) << i;
  }
  EXPECT_EQ(q.next_avail(), 5);
}

// Each way a driver can break the ring: the error names it, and the queue stays broken.
struct Broken {
  const char* name;
  std::function<void(DriverQueue&)> write;
  absl::StatusCode code;
  const char* message;
};

class SplitQueueBrokenTest : public SplitQueueTest, public ::testing::WithParamInterface<Broken> {};

TEST_P(SplitQueueBrokenTest, RefusesAndStaysBroken) {
  auto made5 = Make(8, /*event_idx=*/false, /*indirect=*/GetParam().name[0] != '!');
  DriverQueue& driver = made5.first;
  SplitQueue& q = made5.second;
  GetParam().write(driver);
  absl::StatusOr<std::optional<DescriptorChain>> r = q.Pop(*dma_);
  EXPECT_THAT(r, StatusIs(GetParam().code, HasSubstr(GetParam().message)));
  ASSERT_TRUE(q.broken().has_value());
  const auto still =
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("virtqueue: broken until reset: "));
  EXPECT_THAT(q.Pop(*dma_), still);
  EXPECT_THAT(q.AddUsed(*dma_, 0, 0), still);
  EXPECT_THAT(q.NeedsInterrupt(*dma_), still);
  EXPECT_THAT(q.EnableNotification(*dma_), still);
  EXPECT_THAT(q.DisableNotification(*dma_), still);
}

constexpr uint64_t kD = 0x10000;  // kData, as a raw address.

INSTANTIATE_TEST_SUITE_P(
    Rings, SplitQueueBrokenTest,
    ::testing::Values(
        Broken{"head_outside_table", [](DriverQueue& d) { d.Publish(8); },
               absl::StatusCode::kInvalidArgument, "chain head 8 is outside the descriptor table"},
        Broken{"avail_index_too_far", [](DriverQueue& d) { d.SetAvailIdx(9); },
               absl::StatusCode::kInvalidArgument,
               "the avail index 9 is 9 ahead of the device's 0, more than the queue size 8"},
        Broken{"loop",
               [](DriverQueue& d) {
                 d.SetDesc(0, {kD, 1, kDescNext, 1});
                 d.SetDesc(1, {kD, 1, kDescNext, 0});
                 d.Publish(0);
               },
               absl::StatusCode::kInvalidArgument,
               "longer than its descriptor table (8 descriptors): a loop"},
        Broken{"next_outside_table",
               [](DriverQueue& d) {
                 d.SetDesc(0, {kD, 1, kDescNext, 200});
                 d.Publish(0);
               },
               absl::StatusCode::kInvalidArgument, "descriptor 0 links to 200, outside its table"},
        Broken{"!indirect_not_negotiated",
               [](DriverQueue& d) {
                 d.AddIndirect(kIndirect, {{GuestAddress(kD), 1, false}});
               },
               absl::StatusCode::kInvalidArgument,
               "INDIRECT, but VIRTIO_F_INDIRECT_DESC was not negotiated"},
        Broken{"indirect_and_next",
               [](DriverQueue& d) {
                 d.SetDesc(0, {kIndirect.raw(), 16, kDescIndirect | kDescNext, 1});
                 d.Publish(0);
               },
               absl::StatusCode::kInvalidArgument, "descriptor 0 is both INDIRECT and NEXT"},
        Broken{"indirect_length_not_16s",
               [](DriverQueue& d) {
                 d.SetDesc(0, {kIndirect.raw(), 24, kDescIndirect, 0});
                 d.Publish(0);
               },
               absl::StatusCode::kInvalidArgument,
               "indirect table of 24 bytes is not 1 to 32768 descriptors"},
        Broken{"indirect_empty",
               [](DriverQueue& d) {
                 d.SetDesc(0, {kIndirect.raw(), 0, kDescIndirect, 0});
                 d.Publish(0);
               },
               absl::StatusCode::kInvalidArgument, "indirect table of 0 bytes"},
        Broken{"indirect_too_large",
               [](DriverQueue& d) {
                 d.SetDesc(0, {kIndirect.raw(), 16 * 32769, kDescIndirect, 0});
                 d.Publish(0);
               },
               absl::StatusCode::kInvalidArgument, "indirect table of 524304 bytes"},
        Broken{"indirect_outside_memory",
               [](DriverQueue& d) {
                 d.SetDesc(0, {kRamSize - 16, 32, kDescIndirect, 0});
                 d.Publish(0);
               },
               absl::StatusCode::kOutOfRange, ""},
        Broken{"readable_after_writable",
               [](DriverQueue& d) {
                 d.Add({{GuestAddress(kD), 1, true}, {GuestAddress(kD), 1, false}});
               },
               absl::StatusCode::kInvalidArgument,
               "a device-readable buffer after a device-writable one"},
        Broken{"buffer_wraps",
               [](DriverQueue& d) {
                 d.SetDesc(0, {~uint64_t{0} - 7, 16, 0, 0});
                 d.Publish(0);
               },
               absl::StatusCode::kInvalidArgument, "wraps the address space"},
        Broken{"over_4_gib",
               [](DriverQueue& d) {
                 d.Add({{GuestAddress(kD), 0xffffffff, false}, {GuestAddress(kD), 2, true}});
               },
               absl::StatusCode::kInvalidArgument, "longer than 4 GiB"}),
    [](const ::testing::TestParamInfo<Broken>& info) {
      return std::string(info.param.name[0] == '!' ? info.param.name + 1 : info.param.name);
    });

TEST_F(SplitQueueTest, IndirectTableInsideAnIndirectTableIsRefused) {
  auto made6 = Make(8, false, /*indirect=*/true);
  DriverQueue& driver = made6.first;
  SplitQueue& q = made6.second;
  // The table's only entry is itself INDIRECT.
  ASSERT_OK(memory_->WriteObj(kIndirect, VirtqDesc{kIndirect.raw(), 16, kDescIndirect, 0}));
  driver.SetDesc(0, {kIndirect.raw(), 16, kDescIndirect, 0});
  driver.Publish(0);
  EXPECT_THAT(q.Pop(*dma_), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("an INDIRECT descriptor inside an indirect table")));
}

TEST_F(SplitQueueTest, LoopInsideAnIndirectTableIsRefused) {
  auto made7 = Make(8, false, /*indirect=*/true);
  DriverQueue& driver = made7.first;
  SplitQueue& q = made7.second;
  ASSERT_OK(memory_->WriteObj(kIndirect, VirtqDesc{kData.raw(), 1, kDescNext, 1}));
  ASSERT_OK(memory_->WriteObj(GuestAddress(kIndirect.raw() + 16),
                              VirtqDesc{kData.raw(), 1, kDescNext, 0}));
  driver.SetDesc(0, {kIndirect.raw(), 32, kDescIndirect, 0});
  driver.Publish(0);
  EXPECT_THAT(q.Pop(*dma_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("longer than its indirect table (2 descriptors): a loop")));
}

TEST_F(SplitQueueTest, RingsOutsideMemoryBreakTheQueue) {
  DriverQueue driver(*memory_, kRings, 8);
  QueueConfig config = driver.config();
  config.avail = Iova(kRamSize);  // The avail ring is past the end of RAM.
  ASSERT_OK_AND_ASSIGN(SplitQueue q, SplitQueue::Create(config));
  EXPECT_THAT(q.Pop(*dma_), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_TRUE(q.broken().has_value());

  config = driver.config();
  config.used = Iova(kRamSize - 8);  // Its header fits, its elements do not.
  ASSERT_OK_AND_ASSIGN(SplitQueue q2, SplitQueue::Create(config));
  driver.Add({{Data(0), 1, true}});
  ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> chain, q2.Pop(*dma_));
  EXPECT_THAT(q2.AddUsed(*dma_, chain->head, 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_TRUE(q2.broken().has_value());
}

TEST_F(SplitQueueTest, AddUsedOfAHeadOutsideTheTableIsTheDevicesErrorOnly) {
  auto made8 = Make(8);
  DriverQueue& driver = made8.first;
  SplitQueue& q = made8.second;
  EXPECT_THAT(q.AddUsed(*dma_, 8, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AddUsed of head 8")));
  EXPECT_FALSE(q.broken().has_value());
  EXPECT_EQ(driver.used_idx(), 0);
}

TEST_F(SplitQueueTest, InterruptsFollowNoInterruptWithoutEventIdx) {
  auto made9 = Make(8);
  DriverQueue& driver = made9.first;
  SplitQueue& q = made9.second;
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(false));  // Nothing added.
  driver.Add({{Data(0), 1, true}});
  ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> chain, q.Pop(*dma_));
  ASSERT_OK(q.AddUsed(*dma_, chain->head, 1));
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(true));
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(false));  // Already told.

  driver.SetAvailFlags(kAvailNoInterrupt);
  driver.Add({{Data(0), 1, true}});
  ASSERT_OK_AND_ASSIGN(chain, q.Pop(*dma_));
  ASSERT_OK(q.AddUsed(*dma_, chain->head, 1));
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(false));
}

TEST_F(SplitQueueTest, InterruptsFollowUsedEventWithEventIdx) {
  auto made10 = Make(8, /*event_idx=*/true);
  DriverQueue& driver = made10.first;
  SplitQueue& q = made10.second;
  driver.SetAvailFlags(kAvailNoInterrupt);  // Ignored with EVENT_IDX.
  auto complete = [&](int n) {
    for (int i = 0; i < n; ++i) {
      driver.Add({{Data(0), 1, true}});
      absl::StatusOr<std::optional<DescriptorChain>> chain = q.Pop(*dma_);
      ASSERT_TRUE(chain.ok() && chain->has_value());
      ASSERT_OK(q.AddUsed(*dma_, (*chain)->head, 1));
    }
  };
  driver.SetUsedEvent(0);  // Interrupt once used idx passes 0.
  complete(1);             // 0 -> 1.
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(true));
  complete(1);  // 1 -> 2: used_event 0 was passed before.
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(false));
  driver.SetUsedEvent(4);
  complete(2);  // 2 -> 4: not past 4 yet.
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(false));
  complete(3);  // 4 -> 7: passes 4 within the batch.
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(true));
  driver.SetUsedEvent(0xffff);  // Across the 16-bit wrap: passed when used idx reaches 0.
  complete(0xfffc - q.next_used());
  (void)q.NeedsInterrupt(*dma_);
  ASSERT_EQ(q.next_used(), 0xfffc);
  complete(3);  // 0xfffc -> 0xffff: not yet.
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(false));
  complete(1);  // 0xffff -> 0.
  EXPECT_THAT(q.NeedsInterrupt(*dma_), IsOkAndHolds(true));
}

TEST_F(SplitQueueTest, NotificationSuppression) {
  auto made11 = Make(8);
  DriverQueue& driver = made11.first;
  SplitQueue& q = made11.second;
  ASSERT_OK(q.DisableNotification(*dma_));
  EXPECT_EQ(driver.used_flags(), kUsedNoNotify);
  EXPECT_THAT(q.EnableNotification(*dma_), IsOkAndHolds(false));
  EXPECT_EQ(driver.used_flags(), 0);
  driver.Add({{Data(0), 1, true}});
  // A chain that arrived while notifications were off: Enable says to look again.
  EXPECT_THAT(q.EnableNotification(*dma_), IsOkAndHolds(true));

  auto made12 = Make(8, /*event_idx=*/true);
  DriverQueue& driver2 = made12.first;
  SplitQueue& q2 = made12.second;
  ASSERT_OK(q2.DisableNotification(*dma_));
  EXPECT_EQ(driver2.used_flags(), 0);  // Flags stay 0 with EVENT_IDX.
  driver2.Add({{Data(0), 1, true}});
  driver2.Add({{Data(0), 1, true}});
  ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> chain, q2.Pop(*dma_));
  EXPECT_THAT(q2.EnableNotification(*dma_), IsOkAndHolds(true));
  EXPECT_EQ(driver2.avail_event(), 1);  // Notify when avail idx passes 1 (what is popped).
  ASSERT_OK_AND_ASSIGN(chain, q2.Pop(*dma_));
  EXPECT_THAT(q2.EnableNotification(*dma_), IsOkAndHolds(false));
  EXPECT_EQ(driver2.avail_event(), 2);
}

}  // namespace
}  // namespace vmmkit::virtio
