#include "memory/guest_memory.h"

#include <array>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::HasSubstr;
constexpr uint64_t kMax = ~uint64_t{0};

// Two regions with a hole between them, a third adjacent to the second, and one at the very top
// of the address space.
GuestMemory MakeLayout() {
  auto mem = GuestMemory::CreateRam({{GuestAddress(0x0), 0x2000},
                                     {GuestAddress(0x10000), 0x1000},
                                     {GuestAddress(0x11000), 0x1000},
                                     {GuestAddress(kMax - 0xfff), 0x1000}});
  // The layout is fixed and valid; a failure here is a bug in the test or in CreateRam.
  EXPECT_TRUE(mem.ok()) << mem.status();
  return std::move(mem).value();
}

TEST(GuestMemoryTest, AcceptanceTwoByteReadAtLastByteOfRegion) {
  GuestMemory mem = MakeLayout();
  std::array<uint8_t, 2> buf{};
  EXPECT_THAT(mem.Read(GuestAddress(0x1fff), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("crosses the end of region")));
  // Also when the next region is directly adjacent: an access never spans two regions.
  EXPECT_THAT(mem.Read(GuestAddress(0x10fff), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("crosses the end of region")));
}

TEST(GuestMemoryTest, AcceptanceReadWhoseEndWrapsPast2To64) {
  GuestMemory mem = MakeLayout();
  std::array<uint8_t, 2> buf{};
  EXPECT_THAT(mem.Read(GuestAddress(kMax), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("wraps past 2^64")));
  EXPECT_THAT(mem.Translate(GuestAddress(0x10), kMax),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("wraps past 2^64")));
  // The last byte of the address space itself is readable.
  std::array<uint8_t, 1> one{};
  EXPECT_OK(mem.Read(GuestAddress(kMax), absl::MakeSpan(one)));
}

TEST(GuestMemoryTest, FailedWriteTouchesNothing) {
  GuestMemory mem = MakeLayout();
  std::array<uint8_t, 4> ones;
  ones.fill(0xff);
  EXPECT_THAT(mem.Write(GuestAddress(0x1ffe), ones), StatusIs(absl::StatusCode::kOutOfRange));
  std::array<uint8_t, 2> tail{};
  ASSERT_OK(mem.Read(GuestAddress(0x1ffe), absl::MakeSpan(tail)));
  EXPECT_EQ(tail, (std::array<uint8_t, 2>{0, 0}));
}

TEST(GuestMemoryTest, Holes) {
  GuestMemory mem = MakeLayout();
  std::array<uint8_t, 1> buf{};
  EXPECT_THAT(mem.Read(GuestAddress(0x2000), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("no RAM at 0x2000")));
  EXPECT_THAT(mem.Read(GuestAddress(0xffff), absl::MakeSpan(buf)),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(mem.FindRegion(GuestAddress(0x5000)), nullptr);
  EXPECT_EQ(mem.FindRegion(GuestAddress(0x12000)), nullptr);
}

TEST(GuestMemoryTest, EdgesOfEveryRegionAreAccessible) {
  GuestMemory mem = MakeLayout();
  for (const auto& r : mem.regions()) {
    EXPECT_OK(mem.WriteObj<uint8_t>(r->start(), 0xa1));
    EXPECT_OK(mem.WriteObj<uint8_t>(r->last(), 0xb2));
    EXPECT_THAT(mem.ReadObj<uint8_t>(r->start()), IsOkAndHolds(0xa1));
    EXPECT_THAT(mem.ReadObj<uint8_t>(r->last()), IsOkAndHolds(0xb2));
    EXPECT_EQ(mem.FindRegion(r->start()), r.get());
    EXPECT_EQ(mem.FindRegion(r->last()), r.get());
    // The whole region translates as one range; one byte more does not.
    EXPECT_THAT(mem.Translate(r->start(), r->size()), IsOkAndHolds(r->host_address()));
    EXPECT_THAT(mem.Translate(r->start(), r->size() + 1), StatusIs(absl::StatusCode::kOutOfRange));
  }
}

TEST(GuestMemoryTest, ZeroLength) {
  GuestMemory mem = MakeLayout();
  // Empty copies succeed anywhere, like memcpy(n = 0), including holes.
  EXPECT_OK(mem.Read(GuestAddress(0x5000), absl::Span<uint8_t>()));
  EXPECT_OK(mem.Write(GuestAddress(kMax), absl::Span<const uint8_t>()));
  // Translation of nothing cannot vouch for an address.
  EXPECT_THAT(mem.Translate(GuestAddress(0), 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zero length")));
}

TEST(GuestMemoryTest, ObjectsRoundTripUnaligned) {
  GuestMemory mem = MakeLayout();
  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
  };
  Desc d{.addr = 0x1122334455667788, .len = 0x99, .flags = 3, .next = 7};
  ASSERT_OK(mem.WriteObj(GuestAddress(0x10003), d));
  ASSERT_OK_AND_ASSIGN(Desc back, mem.ReadObj<Desc>(GuestAddress(0x10003)));
  EXPECT_EQ(std::memcmp(&back, &d, sizeof(d)), 0);
  EXPECT_THAT(mem.ReadObj<Desc>(GuestAddress(0x10ff1)), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(mem.ReadObj<uint64_t>(GuestAddress(kMax - 3)),
              StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(GuestMemoryTest, CreateRejectsOverlapAndNull) {
  ASSERT_OK_AND_ASSIGN(auto a, GuestRegion::Create(GuestAddress(0), 0x2000));
  ASSERT_OK_AND_ASSIGN(auto b, GuestRegion::Create(GuestAddress(0x1000), 0x1000));
  EXPECT_THAT(GuestMemory::Create({b, a}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlaps")));
  EXPECT_THAT(GuestMemory::Create({a, nullptr}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GuestMemory::CreateRam({{GuestAddress(0), 0x1001}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(GuestMemoryTest, SortsRegionsAndCountsSize) {
  ASSERT_OK_AND_ASSIGN(auto high, GuestRegion::Create(GuestAddress(0x100000), 0x2000));
  ASSERT_OK_AND_ASSIGN(auto low, GuestRegion::Create(GuestAddress(0), 0x1000));
  ASSERT_OK_AND_ASSIGN(GuestMemory mem, GuestMemory::Create({high, low}));
  ASSERT_EQ(mem.regions().size(), 2u);
  EXPECT_EQ(mem.regions()[0], low);
  EXPECT_EQ(mem.total_size(), 0x3000u);
  GuestMemory empty = std::move(GuestMemory::Create({})).value();  // Cannot fail: no regions.
  EXPECT_EQ(empty.FindRegion(GuestAddress(0)), nullptr);
}

// Model-based: random accesses against a byte-per-address reference over a small space, with
// addresses also drawn near region edges and near 2^64.
TEST(GuestMemoryTest, RandomizedAgainstReferenceModel) {
  std::mt19937_64 rng(42);
  for (int layout = 0; layout < 20; ++layout) {
    // Up to 6 page-sized regions in a 16-page window, plus the top page of the address space.
    std::vector<std::pair<GuestAddress, uint64_t>> spec;
    std::vector<int> region_of_page(16, -1);
    for (uint64_t page = 0; page < 16;) {
      uint64_t pages = 1 + rng() % 3;
      if (page + pages > 16) break;
      if (rng() % 2) {
        for (uint64_t p = page; p < page + pages; ++p)
          region_of_page[p] = static_cast<int>(spec.size());
        spec.push_back({GuestAddress(page * 0x1000), pages * 0x1000});
      }
      page += pages + rng() % 2;
    }
    spec.push_back({GuestAddress(kMax - 0xfff), 0x1000});
    ASSERT_OK_AND_ASSIGN(GuestMemory mem, GuestMemory::CreateRam(spec));
    std::map<uint64_t, uint8_t> model;  // Address -> byte; unset bytes are zero.
    auto region_of = [&](uint64_t a) -> int {
      if (a >= kMax - 0xfff) return 1000;
      return a < 16 * 0x1000 ? region_of_page[a / 0x1000] : -1;
    };
    for (int op = 0; op < 2000; ++op) {
      uint64_t addr;
      switch (rng() % 3) {
        case 0:
          addr = rng() % (17 * 0x1000);
          break;
        case 1:
          addr = (rng() % 17) * 0x1000 - rng() % 4;
          break;  // Near page edges.
        default:
          addr = kMax - rng() % 0x1010;
          break;
      }
      const uint64_t len = rng() % 9;
      // Reference: OK iff every byte is in the same region and the range does not wrap.
      bool ok = true;
      if (len > 0) {
        ok = RangeLast(addr, len).has_value();
        const int first = region_of(addr);
        for (uint64_t i = 0; ok && i < len; ++i) ok = first >= 0 && region_of(addr + i) == first;
      }
      std::vector<uint8_t> buf(len);
      if (rng() % 2) {
        for (auto& b : buf) b = static_cast<uint8_t>(rng());
        absl::Status s = mem.Write(GuestAddress(addr), buf);
        ASSERT_EQ(s.ok(), ok) << "write " << addr << "+" << len << ": " << s;
        if (ok)
          for (uint64_t i = 0; i < len; ++i) model[addr + i] = buf[i];
      } else {
        absl::Status s = mem.Read(GuestAddress(addr), absl::MakeSpan(buf));
        ASSERT_EQ(s.ok(), ok) << "read " << addr << "+" << len << ": " << s;
        if (!ok) {
          EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
          continue;
        }
        for (uint64_t i = 0; i < len; ++i) {
          auto it = model.find(addr + i);
          ASSERT_EQ(buf[i], it == model.end() ? 0 : it->second) << "at " << addr + i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace vmmkit
