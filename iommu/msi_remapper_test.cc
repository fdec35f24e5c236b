#include "iommu/msi_remapper.h"

#include <map>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::iommu {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A remappable-format MSI address for `handle` (with SHV if `shv`).
uint64_t RemappableAddress(uint32_t handle, bool shv) {
  return 0xfee00000u | ((handle & 0x7fff) << 5) | (1u << 4) | (shv ? 1u << 3 : 0u) |
         (((handle >> 15) & 1) << 2);
}

TEST(InterruptRemappingTest, DecodesTheInMemoryFormat) {
  // present, logical, level, delivery mode 1, vector 0x41, destination 0x12345678;
  // SID 0x0018, SQ 2, SVT 1.
  const uint64_t low = 1 | (1 << 2) | (1 << 4) | (1 << 5) | (0x41 << 16) | (0x12345678ull << 32);
  const uint64_t high = 0x0018 | (2 << 16) | (1 << 18);
  const Irte e = Irte::Decode(low, high);
  EXPECT_TRUE(e.present && e.dest_logical && e.level_triggered);
  EXPECT_EQ(e.delivery_mode, 1);
  EXPECT_EQ(e.vector, 0x41);
  EXPECT_EQ(e.destination, 0x12345678u);
  EXPECT_EQ(e.source_id, 0x18);
  EXPECT_EQ(e.source_qualifier, 2);
  EXPECT_EQ(e.source_validation, 1);
}

TEST(InterruptRemappingTest, XapicEntriesKeepTheApicIdInBits47To40) {
  // What Linux writes without EIM: destination APIC 3 as dest << 8 in the dword, redirection
  // hint set, edge.
  const uint64_t low = 1 | (1 << 3) | (0x51 << 16) | (uint64_t{3 << 8} << 32);
  const Irte e = Irte::Decode(low, 0, /*x2apic=*/false);
  EXPECT_EQ(e.destination, 3u);
  EXPECT_FALSE(Irte::HasReservedBits(low, 0, false));
  ASSERT_OK_AND_ASSIGN(MsiMessage out, RemapThrough(e, 4, 0x18, "test"));
  EXPECT_EQ(out, (MsiMessage{0xfee03008, 0x51}));
  // Reserved: bits 14:12, IM (posted), 31:24, 127:84, and in xAPIC mode 39:32 and 63:48.
  for (uint64_t bit : {12u, 14u, 15u, 24u, 31u}) {
    EXPECT_TRUE(Irte::HasReservedBits(low | (uint64_t{1} << bit), 0, false)) << bit;
  }
  EXPECT_TRUE(Irte::HasReservedBits(low | (uint64_t{1} << 32), 0, false));
  EXPECT_FALSE(Irte::HasReservedBits(low | (uint64_t{1} << 32), 0, true));
  EXPECT_TRUE(Irte::HasReservedBits(low | (uint64_t{1} << 63), 0, false));
  EXPECT_TRUE(Irte::HasReservedBits(low, uint64_t{1} << 20, false));
  EXPECT_FALSE(Irte::HasReservedBits(low, 0xfffff, false));  // SID, SQ, SVT.
}

TEST(InterruptRemappingTest, ReservedSourceValidationRejectsEveryone) {
  const Irte e{.present = true, .vector = 0x41, .source_id = 0x18, .source_validation = 3};
  EXPECT_THAT(RemapThrough(e, 1, 0x18, "test"), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(RemapThrough(Irte{}, 1, 0x18, "test"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("IRTE 1 is not present")));
  EXPECT_THAT(InterruptIndex({0xfee00000, 0}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(InterruptIndex({RemappableAddress(0x7fff, true), 0xffff}), IsOkAndHolds(0x17ffeu));
}

TEST(InterruptRemappingTest, RemapsByHandleAndSubhandle) {
  InterruptRemappingTable irt(1 << 16);
  Irte e{.present = true,
         .vector = 0x41,
         .destination = 3,
         .source_id = 0x0018,
         .source_validation = 1};
  ASSERT_OK(irt.Set(7, e));
  e.vector = 0x42;
  e.destination = 0x1ff;  // x2APIC destination above 255.
  ASSERT_OK(irt.Set(9, e));
  e.vector = 0x43;
  ASSERT_OK(irt.Set(0x8000, e));
  ASSERT_OK_AND_ASSIGN(MsiMessage out, irt.Remap({RemappableAddress(7, false), 0}, 0x0018));
  EXPECT_EQ(out, (MsiMessage{0xfee03000, 0x41}));
  ASSERT_OK_AND_ASSIGN(out, irt.Remap({RemappableAddress(7, true), 2}, 0x0018));
  EXPECT_EQ(out.data, 0x42u) << "handle 7 + subhandle 2";
  EXPECT_EQ(out.address, 0xfeeff000u | (1ull << 32)) << "destination bits 31:8 in address_hi";
  ASSERT_OK_AND_ASSIGN(out, irt.Remap({RemappableAddress(0x8000, false), 0}, 0x0018));
  EXPECT_EQ(out.data, 0x43u) << "handle bit 15 comes from address bit 2";
  EXPECT_TRUE(InterruptRemappingTable::IsRemappable({RemappableAddress(1, false), 0}));
  EXPECT_FALSE(InterruptRemappingTable::IsRemappable({0xfee00000, 0x41}));
}

TEST(InterruptRemappingTest, IsTheTranslatorIrqRoutesUse) {
  InterruptRemappingTable irt(64);
  ASSERT_OK(
      irt.Set(5, {.present = true, .vector = 0x71, .source_id = 0x18, .source_validation = 1}));
  irq::MsiTranslator& translator = irt;
  EXPECT_THAT(translator.Translate({RemappableAddress(5, false), 0}, 0x18),
              IsOkAndHolds(MsiMessage{0xfee00000, 0x71}));
  EXPECT_THAT(translator.Translate({RemappableAddress(5, false), 0}, 0x20),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // MsiRoutes asks about every message: a compatibility-format one passes as it is.
  EXPECT_THAT(translator.Translate({0xfee00000, 0x41}, 0x20),
              IsOkAndHolds(MsiMessage{0xfee00000, 0x41}));
}

TEST(InterruptRemappingTest, RejectsTheWrongRequesterAndBadMessages) {
  InterruptRemappingTable irt(256);
  ASSERT_OK(
      irt.Set(1, {.present = true, .vector = 0x50, .source_id = 0x0018, .source_validation = 1}));
  EXPECT_THAT(
      irt.Remap({RemappableAddress(1, false), 0}, 0x0020),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("IRTE 1 belongs to requester 0018")));
  // SQ 3 ignores the function number: 00:03.x may all use it.
  ASSERT_OK(irt.Set(2, {.present = true,
                        .vector = 0x51,
                        .source_id = 0x0018,
                        .source_qualifier = 3,
                        .source_validation = 1}));
  EXPECT_OK(irt.Remap({RemappableAddress(2, false), 0}, 0x001f).status());
  EXPECT_THAT(irt.Remap({RemappableAddress(2, false), 0}, 0x0020),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // SVT 2: a bus range (buses 1-3).
  ASSERT_OK(
      irt.Set(3, {.present = true, .vector = 0x52, .source_id = 0x0103, .source_validation = 2}));
  EXPECT_OK(irt.Remap({RemappableAddress(3, false), 0}, 0x0210).status());
  EXPECT_THAT(irt.Remap({RemappableAddress(3, false), 0}, 0x0410),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(irt.Remap({RemappableAddress(4, false), 0}, 0x0018),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("IRTE 4 is not present")));
  EXPECT_THAT(irt.Remap({RemappableAddress(255, true), 1}, 0x0018),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("index 256")));
  EXPECT_THAT(irt.Remap({0xfee00000, 0x41}, 0x18),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compatibility format")));
  EXPECT_THAT(irt.Remap({0xdead0010, 0}, 0x18),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an MSI address")));
  EXPECT_THAT(irt.Set(256, {}), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(irt.Set(0, {.source_validation = 3}), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(irt.Clear(1));
  EXPECT_THAT(irt.Remap({RemappableAddress(1, false), 0}, 0x0018),
              StatusIs(absl::StatusCode::kNotFound));
}

class FakeMapper : public DoorbellMapper {
 public:
  absl::Status MapDoorbell(Iova iova, uint64_t page, uint64_t) override {
    if (fail) return absl::InternalError("fake map failure");
    mapped[iova.raw()] = page;
    return absl::OkStatus();
  }
  absl::Status UnmapDoorbell(Iova iova, uint64_t) override {
    return mapped.erase(iova.raw()) ? absl::OkStatus() : absl::NotFoundError("not mapped");
  }
  std::map<uint64_t, uint64_t> mapped;  // iova -> doorbell page
  bool fail = false;
};

constexpr uint64_t kItsA = 0x8090040;  // Doorbell registers of two MSI controllers.
constexpr uint64_t kItsB = 0x80a0040;
constexpr uint64_t kItsC = 0x80b0040;

TEST(MsiIovaWindowTest, DoorbellPagesAreSharedRefcountedAndReleased) {
  FakeMapper mapper;
  MsiIovaWindow window(mapper);
  EXPECT_THAT(window.Acquire({kItsA}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no MSI IOVA window")));
  ASSERT_OK(window.Register(Iova(0x8000000), 0x2000));
  EXPECT_THAT(window.Register(Iova(0x9000000), 0x1000),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already")));
  ASSERT_OK_AND_ASSIGN(std::vector<Iova> iovas, window.Acquire({kItsA, kItsA, kItsB}));
  EXPECT_THAT(iovas, ElementsAre(Iova(0x8000040), Iova(0x8000040), Iova(0x8001040)));
  EXPECT_EQ(mapper.mapped.at(0x8000000), 0x8090000u);
  EXPECT_EQ(window.references(kItsA), 2u);
  EXPECT_EQ(window.mapped_pages(), 2u);
  ASSERT_OK(window.Release({kItsA}));
  EXPECT_EQ(window.mapped_pages(), 2u) << "one vector still uses doorbell A";
  ASSERT_OK(window.Release({kItsA, kItsB}));
  EXPECT_THAT(mapper.mapped, IsEmpty());
  EXPECT_THAT(window.Release({kItsA}), StatusIs(absl::StatusCode::kNotFound));
}

TEST(MsiIovaWindowTest, AFullWindowFailsTheWholeEnableAndMapsNothingNew) {
  FakeMapper mapper;
  MsiIovaWindow window(mapper);
  ASSERT_OK(window.Register(Iova(0x8000000), 0x2000));  // Two doorbell pages.
  ASSERT_OK(window.Acquire({kItsA}).status());
  EXPECT_THAT(
      window.Acquire({kItsA, kItsB, kItsC}),
      StatusIs(absl::StatusCode::kResourceExhausted,
               AllOf(HasSubstr("holds 2 doorbell pages"), HasSubstr("enabling these 3 vectors"),
                     HasSubstr("register a larger window"))));
  EXPECT_EQ(window.references(kItsA), 1u) << "the failed call's references are dropped";
  EXPECT_EQ(window.references(kItsB), 0u);
  EXPECT_EQ(mapper.mapped.size(), 1u) << "B's page was unmapped again";
  mapper.fail = true;
  EXPECT_THAT(window.Acquire({kItsB}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("map doorbell page 0x80a0000")));
  EXPECT_EQ(window.mapped_pages(), 1u);
  EXPECT_THAT(window.Register(Iova(0x1000), 0), StatusIs(absl::StatusCode::kFailedPrecondition));
  MsiIovaWindow other(mapper);
  EXPECT_THAT(other.Register(Iova(0x1800), 0x1000), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vmmkit::iommu
