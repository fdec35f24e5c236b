#include "iommu/spapr_tce.h"

#include <map>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::iommu {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kWindow = 0x80000000;  // The default 32-bit window starts at 2 GiB here.
constexpr uint64_t kPage = 0x10000;       // 64 KiB IOMMU pages.

// The host's hardware TCE table of a passthrough device, programmed through MAP/UNMAP.
class HardwareTable : public IommuNotifier {
 public:
  absl::Status Notify(absl::Span<const IommuEvent> events) override {
    for (const IommuEvent& e : events) {
      for (uint64_t off = 0; off < e.mapping.size; off += kPage) {
        if (e.type == IommuEventType::kMap) {
          tces[e.mapping.iova.raw() + off] =
              (e.mapping.translated + off) | static_cast<uint64_t>(e.mapping.perm);
        } else {
          tces.erase(e.mapping.iova.raw() + off);
        }
      }
    }
    return absl::OkStatus();
  }
  std::map<uint64_t, uint64_t> tces;  // ioba -> tce
};

// Both tables agree: every present guest TCE is in the hardware table, and nothing else is.
void ExpectAgree(const SpaprTceTable& t, const HardwareTable& hw) {
  std::map<uint64_t, uint64_t> guest;
  for (uint64_t i = 0; i < t.entries(); ++i) {
    auto tce = t.GetTce(kWindow + i * kPage);
    ASSERT_OK(tce.status());
    if (*tce & 3) guest[kWindow + i * kPage] = *tce;
  }
  EXPECT_EQ(guest, hw.tces);
}

std::unique_ptr<SpaprTceTable> Table(bool in_kernel) {
  auto t = SpaprTceTable::Create("phb0", kWindow, 16, 64,
                                 in_kernel ? std::make_unique<VectorTceStorage>(64) : nullptr);
  EXPECT_OK(t.status());
  return std::move(t).value();
}

TEST(SpaprTceTest, FirstPassthroughDeviceMovesTheViewAndReplaysExistingEntries) {
  auto t = Table(/*in_kernel=*/true);
  EXPECT_FALSE(t->view_in_userspace());
  // The guest maps DMA while only emulated devices are on the bus (KVM handles H_PUT_TCE).
  ASSERT_OK(t->PutTce(kWindow, 0x10000000 | kTceRead | kTceWrite));
  ASSERT_OK(t->PutTce(kWindow + 5 * kPage, 0x20000000 | kTceRead));
  HardwareTable hw;
  ASSERT_OK(t->AttachPassthrough(&hw));
  EXPECT_TRUE(t->view_in_userspace());
  EXPECT_EQ(hw.tces.size(), 2u);
  ExpectAgree(*t, hw);
  // From now on every H_PUT_TCE reaches the hardware table at once.
  ASSERT_OK(t->PutTce(kWindow + 7 * kPage, 0x30000000 | kTceWrite | kTceRead));
  ASSERT_OK(t->PutTce(kWindow, 0));
  ExpectAgree(*t, hw);
  ASSERT_OK_AND_ASSIGN(IotlbEntry e,
                       t->Translate(Iova(kWindow + 7 * kPage + 0x123), IommuAccess::kWrite));
  EXPECT_EQ(e.translated, 0x30000000u);
  EXPECT_EQ(e.addr_mask, kPage - 1);
}

TEST(SpaprTceTest, HotplugUnplugHotplugLeavesExactlyOneNotifier) {
  auto t = Table(/*in_kernel=*/true);
  ASSERT_OK(t->PutTce(kWindow + kPage, 0x10000 | kTceRead));
  HardwareTable hw;
  ASSERT_OK(t->AttachPassthrough(&hw));
  EXPECT_THAT(t->AttachPassthrough(&hw), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK(t->DetachPassthrough(&hw));
  EXPECT_EQ(t->address_space().notifier_count(), 0u);
  hw.tces.clear();  // The unplugged device's container and its hardware table are gone.
  ASSERT_OK(t->PutTce(kWindow + 2 * kPage, 0x20000 | kTceRead));  // While unplugged.
  ASSERT_OK(t->AttachPassthrough(&hw));
  EXPECT_EQ(t->address_space().notifier_count(), 1u);
  ExpectAgree(*t, hw);
  ASSERT_OK(t->PutTce(kWindow + 3 * kPage, 0x30000 | kTceRead));
  ExpectAgree(*t, hw);
  EXPECT_THAT(t->DetachPassthrough(nullptr), StatusIs(absl::StatusCode::kNotFound));
}

TEST(SpaprTceTest, AUserspaceTableWorksTheSameFromTheStart) {
  auto t = Table(/*in_kernel=*/false);
  EXPECT_TRUE(t->view_in_userspace());
  ASSERT_OK(t->PutTce(kWindow, 0x40000 | kTceRead));
  HardwareTable a, b;
  ASSERT_OK(t->AttachPassthrough(&a));
  ASSERT_OK(t->AttachPassthrough(&b));  // A second device on the same bus.
  ASSERT_OK(t->PutTce(kWindow + kPage, 0x50000 | kTceRead | kTceWrite));
  ExpectAgree(*t, a);
  ExpectAgree(*t, b);
}

TEST(SpaprTceTest, HypercallArgumentsAreChecked) {
  auto t = Table(/*in_kernel=*/false);
  EXPECT_THAT(t->PutTce(kWindow - kPage, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("H_PUT_TCE ioba 0x7fff0000")));
  EXPECT_THAT(t->PutTce(kWindow + 64 * kPage, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t->PutTce(kWindow + 0x1000, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t->PutTce(kWindow, 0x1000 | kTceRead),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not page aligned")));
  EXPECT_THAT(t->GetTce(~0ull), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t->Translate(Iova(kWindow), IommuAccess::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(t->PutTce(kWindow, 0x10000 | kTceRead));
  EXPECT_THAT(t->Translate(Iova(kWindow), IommuAccess::kWrite),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(SpaprTceTable::Create("x", 0, 13, 64), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SpaprTceTable::Create("x", 0x1000, 16, 64),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SpaprTceTable::Create("x", 0, 16, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SpaprTceTable::Create("x", 0, 16, 64, std::make_unique<VectorTceStorage>(8)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("8 entries")));
}

}  // namespace
}  // namespace vmmkit::iommu
