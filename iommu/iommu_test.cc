#include "iommu/iommu.h"

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "iommu/testing/page_table_iommu.h"

namespace vmmkit::iommu {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::PageTableIommu;

constexpr IommuAccess kRw = IommuAccess::kReadWrite;
constexpr uint8_t kAll = kMapEvents | kUnmapEvents;

// "MAP 0x1000+0x1000->0x80000" / "UNMAP ..." for readable expectations.
class Recorder : public IommuNotifier {
 public:
  absl::Status Notify(absl::Span<const IommuEvent> events) override {
    for (const IommuEvent& e : events) {
      log.push_back(absl::StrCat(e.type == IommuEventType::kMap ? "MAP " : "UNMAP ",
                                 e.mapping.iova.ToString(), "+0x", absl::Hex(e.mapping.size),
                                 "->0x", absl::Hex(e.mapping.translated)));
    }
    ++batches;
    return fail ? absl::ResourceExhaustedError("host said no") : absl::OkStatus();
  }
  std::vector<std::string> Take() {
    std::vector<std::string> out;
    out.swap(log);
    return out;
  }
  std::vector<std::string> log;
  int batches = 0;
  bool fail = false;
};

class IommuTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(as_.RegisterNotifier(&rec_, Iova(0), Iova(~0ull), kAll)); }
  PageTableIommu model_;
  IommuAddressSpace as_{"dev0", model_};
  Recorder rec_;
};

TEST_F(IommuTest, PageInvalidationsMapOnceAndUnmapOnce) {
  model_.SetPage(0x1000, 0x1000, 0x80000, kRw);
  as_.InvalidateRange(Iova(0x1000), 0x1000);
  EXPECT_THAT(rec_.Take(), ElementsAre("MAP 0x1000+0x1000->0x80000"));
  as_.InvalidateRange(Iova(0x1000), 0x1000);  // Nothing changed: nothing said.
  EXPECT_THAT(rec_.Take(), IsEmpty());
  model_.ClearRange(0x1000, 0x1000);
  for (int i = 0; i < 3; ++i) as_.InvalidateRange(Iova(0x1000), 0x1000);
  EXPECT_THAT(rec_.Take(), ElementsAre("UNMAP 0x1000+0x1000->0x80000"))
      << "three invalidations of one page, one UNMAP";
  as_.InvalidateAll();
  EXPECT_THAT(rec_.Take(), IsEmpty());
}

TEST_F(IommuTest, DomainInvalidationUnmapsExactlyWhatWasMappedAndMapsWhatIsNew) {
  for (uint64_t i = 0; i < 4; ++i) model_.SetPage(i * 0x1000, 0x1000, 0x80000 + i * 0x1000, kRw);
  as_.InvalidateAll();
  EXPECT_EQ(rec_.Take().size(), 4u);
  model_.ClearRange(0x1000, 0x1000);                             // Gone.
  model_.SetPage(0x2000, 0x1000, 0x99000, kRw);                  // Changed.
  model_.SetPage(0x10000, 0x1000, 0xa0000, IommuAccess::kRead);  // New.
  as_.InvalidateAll();
  EXPECT_THAT(rec_.Take(),
              ElementsAre("UNMAP 0x1000+0x1000->0x81000", "UNMAP 0x2000+0x1000->0x82000",
                          "MAP 0x2000+0x1000->0x99000", "MAP 0x10000+0x1000->0xa0000"));
  EXPECT_EQ(as_.tracked().size(), 4u);
  // A page invalidation for a range the guest never mapped says nothing.
  as_.InvalidateRange(Iova(0x50000), 0x10000);
  EXPECT_THAT(rec_.Take(), IsEmpty());
}

TEST_F(IommuTest, AHugePageReplacedBySmallPagesIsUnmappedOnce) {
  model_.SetPage(0x200000, 0x200000, 0x40000000, kRw);
  as_.InvalidateRange(Iova(0x200000), 0x1000);  // Invalidation of part of it.
  EXPECT_THAT(rec_.Take(), ElementsAre("MAP 0x200000+0x200000->0x40000000"));
  model_.SetPage(0x200000, 0x1000, 0x50000000, kRw);  // The guest splits it.
  as_.InvalidateRange(Iova(0x200000), 0x1000);
  EXPECT_THAT(rec_.Take(), ElementsAre("UNMAP 0x200000+0x200000->0x40000000",
                                       "MAP 0x200000+0x1000->0x50000000"));
}

TEST_F(IommuTest, GlobalInvalidationCoversEveryAddressSpace) {
  PageTableIommu model2;
  IommuAddressSpace as2("dev1", model2);
  Recorder rec2;
  ASSERT_OK(as2.RegisterNotifier(&rec2, Iova(0), Iova(~0ull), kAll));
  model_.SetPage(0x1000, 0x1000, 0x1000, kRw);
  model2.SetPage(0x2000, 0x1000, 0x2000, kRw);
  IommuAddressSpace* all[] = {&as_, &as2};
  InvalidateGlobal(all);
  EXPECT_THAT(rec_.Take(), ElementsAre("MAP 0x1000+0x1000->0x1000"));
  EXPECT_THAT(rec2.Take(), ElementsAre("MAP 0x2000+0x1000->0x2000"));
}

TEST_F(IommuTest, ContextInvalidationReplays) {
  model_.SetPage(0x1000, 0x1000, 0x80000, kRw);
  as_.InvalidateAll();
  rec_.Take();
  as_.InvalidateContext();
  EXPECT_THAT(rec_.Take(),
              ElementsAre("UNMAP 0x1000+0x1000->0x80000", "MAP 0x1000+0x1000->0x80000"));
}

TEST_F(IommuTest, NotifiersRegisterOnceReplayAndSeeOnlyTheirRangeAndEvents) {
  model_.SetPage(0x1000, 0x1000, 0x80000, kRw);
  model_.SetPage(0x9000, 0x1000, 0x90000, kRw);
  as_.InvalidateAll();
  Recorder low, unmaps_only;
  ASSERT_OK(as_.RegisterNotifier(&low, Iova(0), Iova(0x7fff), kAll));  // Replays.
  EXPECT_THAT(low.Take(), ElementsAre("MAP 0x1000+0x1000->0x80000"));
  EXPECT_THAT(as_.RegisterNotifier(&low, Iova(0), Iova(0x7fff), kAll),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(as_.notifier_count(), 2u);
  ASSERT_OK(as_.RegisterNotifier(&unmaps_only, Iova(0), Iova(~0ull), kUnmapEvents));
  EXPECT_THAT(unmaps_only.Take(), IsEmpty());
  model_.ClearRange(0, 0x10000);
  as_.InvalidateAll();
  EXPECT_THAT(low.Take(), ElementsAre("UNMAP 0x1000+0x1000->0x80000"));
  EXPECT_THAT(unmaps_only.Take(), ElementsAre("UNMAP 0x0+0xffffffffffffffff->0x0"))
      << "an UNMAP-only notifier hears the invalidated range";
  ASSERT_OK(as_.UnregisterNotifier(&low));
  EXPECT_THAT(as_.UnregisterNotifier(&low), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(as_.Replay(&low), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(as_.RegisterNotifier(nullptr, Iova(0), Iova(1), kAll),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// A device IOTLB: it may hold a translation that came and went between two invalidations (a
// guest without caching mode does not invalidate after a map), so it hears each invalidated
// range whatever was mapped there; with no MAP notifier nothing is walked or tracked.
TEST(IommuUnmapOnlyTest, HearsEveryInvalidatedRangeClampedAndNothingIsWalked) {
  PageTableIommu model;
  IommuAddressSpace as("dev1", model);
  Recorder iotlb;
  ASSERT_OK(as.RegisterNotifier(&iotlb, Iova(0x10000), Iova(0x1ffff), kUnmapEvents));
  EXPECT_THAT(iotlb.Take(), IsEmpty()) << "nothing to replay";
  model.SetPage(0x10000, 0x1000, 0x80000, kRw);
  ASSERT_OK(as.Translate(Iova(0x10000), IommuAccess::kRead).status());  // Cached (the IOTLB).
  model.ClearRange(0x10000, 0x1000);
  model.SetPage(0x12000, 0x1000, 0x82000, kRw);  // Mapped after the last invalidation.
  as.InvalidateRange(Iova(0x1000), 0x1000);      // Outside its range: nothing.
  EXPECT_THAT(iotlb.Take(), IsEmpty());
  as.InvalidateRange(Iova(0x10000), 0x4000);
  EXPECT_THAT(iotlb.Take(), ElementsAre("UNMAP 0x10000+0x4000->0x0"));
  EXPECT_THAT(as.Translate(Iova(0x10000), IommuAccess::kRead),
              StatusIs(absl::StatusCode::kNotFound))
      << "the invalidation flushed the IOTLB";
  as.InvalidateRange(Iova(0x1f000), 0x2000);
  EXPECT_THAT(iotlb.Take(), ElementsAre("UNMAP 0x1f000+0x1000->0x0")) << "clamped";
  as.InvalidateAll();
  EXPECT_THAT(iotlb.Take(), ElementsAre("UNMAP 0x10000+0x10000->0x0"));
  as.InvalidateContext();
  EXPECT_THAT(iotlb.Take(), ElementsAre("UNMAP 0x10000+0x10000->0x0"));
  EXPECT_EQ(model.walks, 0) << "no MAP notifier: no walk";
  EXPECT_EQ(as.tracked().size(), 0u);
  EXPECT_EQ(as.map_notifier_count(), 0u);
}

TEST(IommuUnmapOnlyTest, TheFirstMapNotifierStartsFromTheTablesAndTheLastForgetsThem) {
  PageTableIommu model;
  IommuAddressSpace as("dev1", model);
  Recorder iotlb, shadow;
  ASSERT_OK(as.RegisterNotifier(&iotlb, Iova(0), Iova(~0ull), kUnmapEvents));
  model.SetPage(0x1000, 0x1000, 0x80000, kRw);
  as.InvalidateRange(Iova(0x1000), 0x1000);
  model.SetPage(0x5000, 0x1000, 0x85000, kRw);  // Never invalidated.
  EXPECT_EQ(model.walks, 0);
  ASSERT_OK(as.RegisterNotifier(&shadow, Iova(0), Iova(~0ull), kAll));
  EXPECT_THAT(shadow.Take(),
              ElementsAre("MAP 0x1000+0x1000->0x80000", "MAP 0x5000+0x1000->0x85000"))
      << "replayed from the tables as they are";
  EXPECT_EQ(as.tracked().size(), 2u);
  iotlb.Take();
  model.ClearRange(0x1000, 0x1000);
  as.InvalidateRange(Iova(0x1000), 0x1000);
  EXPECT_THAT(shadow.Take(), ElementsAre("UNMAP 0x1000+0x1000->0x80000"));
  EXPECT_THAT(iotlb.Take(), ElementsAre("UNMAP 0x1000+0x1000->0x0"));
  ASSERT_OK(as.UnregisterNotifier(&shadow));
  EXPECT_EQ(as.tracked().size(), 0u) << "no MAP notifier left: nothing tracked";
  const int walks = model.walks;
  as.InvalidateAll();
  EXPECT_EQ(model.walks, walks);
  EXPECT_THAT(iotlb.Take(), ElementsAre("UNMAP 0x0+0xffffffffffffffff->0x0"));
}

TEST_F(IommuTest, AFailedReplayLeavesTheNotifierUnregisteredAndUndone) {
  model_.SetPage(0x1000, 0x1000, 0x80000, kRw);
  as_.InvalidateAll();
  Recorder bad;
  bad.fail = true;
  EXPECT_THAT(as_.RegisterNotifier(&bad, Iova(0), Iova(~0ull), kAll),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("replay")));
  EXPECT_THAT(bad.Take(),
              ElementsAre("MAP 0x1000+0x1000->0x80000", "UNMAP 0x1000+0x1000->0x80000"));
  EXPECT_EQ(as_.notifier_count(), 1u);
}

TEST_F(IommuTest, ANotifierFailureBecomesAFaultNotACrash) {
  rec_.fail = true;
  model_.SetPage(0x3000, 0x1000, 0x80000, kRw);
  as_.InvalidateRange(Iova(0x3000), 0x1000);
  auto faults = as_.TakeFaults();
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults[0].iova, Iova(0x3000));
  EXPECT_THAT(faults[0].reason, HasSubstr("host said no"));
  EXPECT_THAT(as_.TakeFaults(), IsEmpty());
}

TEST_F(IommuTest, TranslateGoesThroughTheIotlb) {
  model_.SetPage(0x200000, 0x200000, 0x40000000, IommuAccess::kRead);
  ASSERT_OK_AND_ASSIGN(IotlbEntry e, as_.Translate(Iova(0x234567), IommuAccess::kRead));
  EXPECT_EQ(e.iova, Iova(0x200000));
  EXPECT_EQ(e.addr_mask, 0x1fffffu);
  EXPECT_EQ(model_.translations, 1);
  ASSERT_OK(as_.Translate(Iova(0x234000), IommuAccess::kRead).status());
  EXPECT_EQ(model_.translations, 1) << "an IOTLB hit";
  EXPECT_THAT(as_.Translate(Iova(0x234000), IommuAccess::kWrite),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("w access to 0x234000")));
  EXPECT_THAT(as_.Translate(Iova(0x1000), IommuAccess::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  model_.SetPage(0x200000, 0x200000, 0x60000000, IommuAccess::kRead);
  as_.InvalidateRange(Iova(0x200000), 0x200000);
  ASSERT_OK_AND_ASSIGN(e, as_.Translate(Iova(0x234000), IommuAccess::kRead));
  EXPECT_EQ(e.translated, 0x60000000u) << "the invalidation flushed the IOTLB";
}

}  // namespace
}  // namespace vmmkit::iommu
