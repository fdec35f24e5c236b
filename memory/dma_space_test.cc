#include "memory/dma_space.h"

#include <random>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::HasSubstr;

// Two RAM regions with a hole between, as a VMM's low and high RAM.
GuestMemory TwoRegions() {
  absl::StatusOr<GuestMemory> m =
      GuestMemory::CreateRam({{GuestAddress(0), 0x10000}, {GuestAddress(0x20000), 0x10000}});
  EXPECT_THAT(m, IsOk());
  return *std::move(m);
}

TEST(IdentityDmaSpaceTest, ReadsAndWritesGuestRamAtTheBusAddress) {
  GuestMemory ram = TwoRegions();
  IdentityDmaSpace dma(ram);
  ASSERT_OK(dma.WriteObj<uint64_t>(Iova(0x20008), 0x1122334455667788));
  EXPECT_THAT(ram.ReadObj<uint64_t>(GuestAddress(0x20008)), IsOkAndHolds(0x1122334455667788u));
  ASSERT_OK(ram.WriteObj<uint32_t>(GuestAddress(0xfffc), 0xabcd));
  EXPECT_THAT(dma.ReadObj<uint32_t>(Iova(0xfffc)), IsOkAndHolds(0xabcdu));
}

TEST(IdentityDmaSpaceTest, NothingOutsideGuestRamIsReachable) {
  GuestMemory ram = TwoRegions();
  IdentityDmaSpace dma(ram);
  uint8_t buf[16] = {};
  // In the hole, across a region's end into it, past the end, and wrapping the address space.
  EXPECT_THAT(dma.Read(Iova(0x18000), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("DMA read at bus address")));
  EXPECT_THAT(dma.Write(Iova(0xfff8), absl::MakeConstSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("DMA write")));
  EXPECT_THAT(dma.Read(Iova(0x30000), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(dma.Read(Iova(~0ull - 4), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange));
  // A refused write changed nothing at the part that was in RAM.
  EXPECT_THAT(ram.ReadObj<uint64_t>(GuestAddress(0xfff8)), IsOkAndHolds(0u));
}

TEST(IdentityDmaSpaceTest, AgreesWithAModelOfTheRamUnderRandomAccesses) {
  GuestMemory ram = TwoRegions();
  IdentityDmaSpace dma(ram);
  std::vector<uint8_t> model(0x30000, 0);  // Bytes 0x10000-0x1ffff are the hole.
  const auto in_ram = [](uint64_t a, uint64_t n) {
    return (a + n <= 0x10000) || (a >= 0x20000 && a + n <= 0x30000);
  };
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t a = rng() % 0x32000, n = 1 + rng() % 64;
    std::vector<uint8_t> buf(n);
    if (rng() % 2) {
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      const absl::Status s = dma.Write(Iova(a), buf);
      ASSERT_EQ(s.ok(), in_ram(a, n)) << std::hex << a << " +" << n << ": " << s;
      if (s.ok()) std::copy(buf.begin(), buf.end(), model.begin() + static_cast<long>(a));
    } else {
      const absl::Status s = dma.Read(Iova(a), absl::MakeSpan(buf));
      ASSERT_EQ(s.ok(), in_ram(a, n)) << std::hex << a << " +" << n << ": " << s;
      if (s.ok()) {
        ASSERT_TRUE(std::equal(buf.begin(), buf.end(), model.begin() + static_cast<long>(a)));
      }
    }
  }
}

}  // namespace
}  // namespace vmmkit
