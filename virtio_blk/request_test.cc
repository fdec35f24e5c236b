#include "virtio_blk/request.h"

#include <cstring>
#include <optional>
#include <utility>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/guest_memory.h"
#include "virtio/testing/driver_queue.h"

namespace vmmkit::virtio_blk {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kCapacity = 1024;  // Sectors: 512 KiB.
constexpr uint64_t kHeader = 0x1000, kData = 0x2000, kStatus = 0x9000;

class RequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_.emplace(virtio::testing::TestGuestMemory(1 << 20));
    dma_.emplace(*memory_);
  }
  void Header(uint32_t type, uint64_t sector, uint64_t at = kHeader) {
    ASSERT_OK(memory_->WriteObj(GuestAddress(at), type));
    ASSERT_OK(memory_->WriteObj(GuestAddress(at + 4), uint32_t{0}));
    ASSERT_OK(memory_->WriteObj(GuestAddress(at + 8), sector));
  }
  void RangeAt(uint64_t at, uint64_t sector, uint32_t sectors, uint32_t flags) {
    ASSERT_OK(memory_->WriteObj(GuestAddress(at), sector));
    ASSERT_OK(memory_->WriteObj(GuestAddress(at + 8), sectors));
    ASSERT_OK(memory_->WriteObj(GuestAddress(at + 12), flags));
  }
  // A chain as Linux's virtio_blk builds it: header, data, status.
  static virtio::DescriptorChain Chain(std::vector<virtio::Buffer> readable,
                                       std::vector<virtio::Buffer> writable) {
    virtio::DescriptorChain c{
        .head = 0, .readable = std::move(readable), .writable = std::move(writable)};
    for (const auto& b : c.readable) c.readable_bytes += b.len;
    for (const auto& b : c.writable) c.writable_bytes += b.len;
    return c;
  }
  absl::StatusOr<Request> Parse(const virtio::DescriptorChain& c,
                                DiskLimits limits = {.capacity = kCapacity}) {
    return ParseRequest(c, *dma_, limits);
  }

  std::optional<GuestMemory> memory_;
  std::optional<IdentityDmaSpace> dma_;
};

TEST_F(RequestTest, ReadIntoTheWritableBuffersBeforeTheStatus) {
  Header(kTypeIn, 8);
  ASSERT_OK_AND_ASSIGN(
      Request r, Parse(Chain({{Iova(kHeader), 16}}, {{Iova(kData), 4096}, {Iova(kStatus), 1}})));
  EXPECT_EQ(r.type, kTypeIn);
  EXPECT_EQ(r.status, kStatusOk);
  EXPECT_EQ(r.sector, 8u);
  EXPECT_THAT(r.data, ElementsAre(Segment{Iova(kData), 4096}));
  EXPECT_EQ(r.data_bytes, 4096u);
  EXPECT_EQ(r.status_addr, Iova(kStatus));
}

TEST_F(RequestTest, TheStatusMayShareTheDataBuffer) {
  // One writable buffer: 1024 bytes of data, then the status byte.
  Header(kTypeIn, 0);
  ASSERT_OK_AND_ASSIGN(Request r, Parse(Chain({{Iova(kHeader), 16}}, {{Iova(kData), 1025}})));
  EXPECT_THAT(r.data, ElementsAre(Segment{Iova(kData), 1024}));
  EXPECT_EQ(r.status_addr, Iova(kData + 1024));
}

// Found by request_fuzz (as a wrong expectation of its own): the guest may point the status
// buffer into its data buffer. The request stands; the device writes the status last, so the
// guest loses one byte of its own data and nothing else.
TEST_F(RequestTest, AStatusByteAliasingTheDataIsTheGuestsBusiness) {
  Header(kTypeIn, 0);
  ASSERT_OK_AND_ASSIGN(
      Request r, Parse(Chain({{Iova(kHeader), 16}}, {{Iova(kData), 512}, {Iova(kData + 10), 1}})));
  EXPECT_EQ(r.status, kStatusOk);
  EXPECT_THAT(r.data, ElementsAre(Segment{Iova(kData), 512}));
  EXPECT_EQ(r.status_addr, Iova(kData + 10));
}

TEST_F(RequestTest, WriteFromTheReadableBytesAfterTheHeader) {
  // The header and the first data bytes in one buffer, the rest in another.
  Header(kTypeOut, 2, kData - 16);
  ASSERT_OK_AND_ASSIGN(Request r, Parse(Chain({{Iova(kData - 16), 16 + 512}, {Iova(0x40000), 512}},
                                              {{Iova(kStatus), 1}})));
  EXPECT_EQ(r.status, kStatusOk);
  EXPECT_THAT(r.data, ElementsAre(Segment{Iova(kData), 512}, Segment{Iova(0x40000), 512}));
  EXPECT_EQ(r.data_bytes, 1024u);
}

TEST_F(RequestTest, RefusesWhatTheDiskCannotDo) {
  const auto status = [&](virtio::DescriptorChain c, DiskLimits l = {.capacity = kCapacity}) {
    absl::StatusOr<Request> r = Parse(c, l);
    EXPECT_OK(r.status());
    EXPECT_TRUE(!r.ok() ||
                (r->data.empty() && r->ranges.empty() && r->status_addr == Iova(kStatus)));
    return r.ok() ? int{r->status} : -1;
  };
  const auto read = Chain({{Iova(kHeader), 16}}, {{Iova(kData), 1024}, {Iova(kStatus), 1}});
  const auto write = Chain({{Iova(kHeader), 16}, {Iova(kData), 1024}}, {{Iova(kStatus), 1}});
  Header(kTypeIn, kCapacity - 1);  // Two sectors from the last one.
  EXPECT_EQ(status(read), kStatusIoErr);
  Header(kTypeIn, ~uint64_t{0});  // A sector that would wrap.
  EXPECT_EQ(status(read), kStatusIoErr);
  Header(kTypeIn, 0);
  EXPECT_EQ(status(Chain({{Iova(kHeader), 16}}, {{Iova(kData), 100}, {Iova(kStatus), 1}})),
            kStatusIoErr);  // Not whole sectors.
  Header(kTypeOut, 0);
  EXPECT_EQ(status(write, {.capacity = kCapacity, .read_only = true}), kStatusIoErr);
  Header(kTypeFlush, 5);
  EXPECT_EQ(status(Chain({{Iova(kHeader), 16}}, {{Iova(kStatus), 1}})), kStatusIoErr);
  Header(kTypeGetId, 0);
  EXPECT_EQ(status(Chain({{Iova(kHeader), 16}}, {{Iova(kData), 19}, {Iova(kStatus), 1}})),
            kStatusIoErr);
  Header(77, 0);
  EXPECT_EQ(status(read), kStatusUnsupported);
}

TEST_F(RequestTest, FlushAndGetId) {
  Header(kTypeFlush, 0);
  ASSERT_OK_AND_ASSIGN(Request f, Parse(Chain({{Iova(kHeader), 16}}, {{Iova(kStatus), 1}})));
  EXPECT_EQ(f.type, kTypeFlush);
  EXPECT_EQ(f.status, kStatusOk);
  Header(kTypeGetId, 0);
  ASSERT_OK_AND_ASSIGN(
      Request id, Parse(Chain({{Iova(kHeader), 16}}, {{Iova(kData), 32}, {Iova(kStatus), 1}})));
  EXPECT_THAT(id.data, ElementsAre(Segment{Iova(kData), kIdBytes}));
}

TEST_F(RequestTest, DiscardAndWriteZeroesRanges) {
  Header(kTypeWriteZeroes, 0);
  RangeAt(kData, 10, 4, kWriteZeroesUnmap);
  RangeAt(kData + 16, 100, 8, 0);
  const auto two = Chain({{Iova(kHeader), 16}, {Iova(kData), 32}}, {{Iova(kStatus), 1}});
  ASSERT_OK_AND_ASSIGN(Request r, Parse(two, {.capacity = kCapacity, .max_ranges = 2}));
  EXPECT_THAT(r.ranges, ElementsAre(Range{10, 4, true}, Range{100, 8, false}));
  // More ranges than the device offered, a range past the end, a flag discard does not have.
  ASSERT_OK_AND_ASSIGN(r, Parse(two, {.capacity = kCapacity, .max_ranges = 1}));
  EXPECT_EQ(r.status, kStatusIoErr);
  EXPECT_TRUE(r.ranges.empty());
  RangeAt(kData + 16, kCapacity - 4, 8, 0);
  ASSERT_OK_AND_ASSIGN(r, Parse(two, {.capacity = kCapacity, .max_ranges = 2}));
  EXPECT_EQ(r.status, kStatusIoErr);
  Header(kTypeDiscard, 0);
  const auto one = Chain({{Iova(kHeader), 16}, {Iova(kData), 16}}, {{Iova(kStatus), 1}});
  ASSERT_OK_AND_ASSIGN(r, Parse(one));
  EXPECT_EQ(r.status, kStatusUnsupported);  // UNMAP is write-zeroes' flag only.
  RangeAt(kData, 10, 4, 0);
  ASSERT_OK_AND_ASSIGN(r, Parse(one));
  EXPECT_EQ(r.status, kStatusOk);
  ASSERT_OK_AND_ASSIGN(r, Parse(one, {.capacity = kCapacity, .read_only = true}));
  EXPECT_EQ(r.status, kStatusIoErr);
  // Not whole 16-byte ranges.
  ASSERT_OK_AND_ASSIGN(
      r, Parse(Chain({{Iova(kHeader), 16}, {Iova(kData), 20}}, {{Iova(kStatus), 1}})));
  EXPECT_EQ(r.status, kStatusIoErr);
}

TEST_F(RequestTest, AChainThatCannotBeAnsweredIsAnError) {
  Header(kTypeIn, 0);
  EXPECT_THAT(Parse(Chain({{Iova(kHeader), 16}}, {})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no status byte")));
  EXPECT_THAT(Parse(Chain({{Iova(kHeader), 16}}, {{Iova(kStatus), 0}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no status byte")));
  EXPECT_THAT(Parse(Chain({{Iova(kHeader), 8}}, {{Iova(kStatus), 1}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("header of 8 bytes")));
  // A header outside guest memory.
  EXPECT_THAT(Parse(Chain({{Iova(1 << 20), 16}}, {{Iova(kStatus), 1}})),
              StatusIs(absl::StatusCode::kOutOfRange));
}

}  // namespace
}  // namespace vmmkit::virtio_blk
