#include "iommu/shadow.h"

#include <linux/vfio.h>

#include <random>
#include <set>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "iommu/testing/fake_dma_backend.h"
#include "iommu/testing/page_table_iommu.h"
#include "memory/address_space.h"
#include "vfio/container.h"
#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::iommu {
namespace {

using testing::FakeDmaBackend;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::PageTableIommu;

constexpr IommuAccess kRw = IommuAccess::kReadWrite;
constexpr uint8_t kAll = kMapEvents | kUnmapEvents;
constexpr uint64_t kPage = 0x1000;

class ShadowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ram = GuestRegion::Create(GuestAddress(0), 0x100000);
    ASSERT_OK(ram.status());
    ram_ = *ram;
    ASSERT_OK(system_.AddRam("ram", ram_));
    ASSERT_OK(system_.AddMmio("mmio", GuestAddress(0x100000), 0x1000));
  }
  std::unique_ptr<VfioShadow> Shadow(vfio::DmaBackend& backend) {
    auto s = VfioShadow::Create(backend, system_);
    EXPECT_OK(s.status());
    return std::move(s).value();
  }
  const uint8_t* Host(uint64_t gpa) const { return ram_->host_address() + gpa; }
  // The guest maps IOVA 0x40000-0x47fff to guest RAM 0x8000-0xffff, page by page, and
  // invalidates.
  void MapEightContiguousPages() {
    for (uint64_t i = 0; i < 8; ++i) {
      model_.SetPage(0x40000 + i * kPage, kPage, 0x8000 + i * kPage, kRw);
    }
    as_.InvalidateAll();
  }

  AddressSpace system_{"system"};
  std::shared_ptr<GuestRegion> ram_;
  PageTableIommu model_;
  IommuAddressSpace as_{"dev", model_};
  FakeDmaBackend host_;
};

TEST_F(ShadowTest, MapsTranslationsToTheGuestRamTheyPointAt) {
  auto shadow = Shadow(host_);
  ASSERT_OK(as_.RegisterNotifier(shadow.get(), Iova(0), Iova(~0ull), kAll));
  model_.SetPage(0x10000, kPage, 0x5000, kRw);
  model_.SetPage(0x20000, kPage, 0x6000, IommuAccess::kRead);
  as_.InvalidateAll();
  EXPECT_EQ(host_.HostPage(0x10000), Host(0x5000));
  EXPECT_TRUE(host_.mappings.at(0x10000).writable);
  EXPECT_FALSE(host_.mappings.at(0x20000).writable);
  model_.ClearRange(0x10000, kPage);
  as_.InvalidateRange(Iova(0x10000), kPage);
  EXPECT_EQ(host_.HostPage(0x10000), nullptr);
  ASSERT_OK(as_.UnregisterNotifier(shadow.get()));
  shadow.reset();
  EXPECT_THAT(host_.mappings, IsEmpty()) << "destruction unmaps what is left";
  EXPECT_EQ(host_.duplicate_unmaps, 0u);
}

TEST_F(ShadowTest, CoalescesContiguousMapsAndSplitsByRemapping) {
  auto shadow = Shadow(host_);
  ASSERT_OK(as_.RegisterNotifier(shadow.get(), Iova(0), Iova(~0ull), kAll));
  MapEightContiguousPages();
  ASSERT_EQ(host_.mappings.size(), 1u) << "eight contiguous pages, one host mapping";
  EXPECT_EQ(host_.mappings.at(0x40000).size, 8 * kPage);
  EXPECT_EQ(host_.maps, 1u);
  // The guest unmaps page 3: the host mapping is replaced by pages 0-2 and 4-7.
  model_.ClearRange(0x43000, kPage);
  as_.InvalidateRange(Iova(0x43000), kPage);
  ASSERT_EQ(host_.mappings.size(), 2u);
  EXPECT_EQ(host_.mappings.at(0x40000).size, 3 * kPage);
  EXPECT_EQ(host_.mappings.at(0x44000).size, 4 * kPage);
  EXPECT_EQ(host_.HostPage(0x45000), Host(0xd000));
  EXPECT_EQ(host_.bisects, 0u);
  EXPECT_EQ(host_.duplicate_unmaps, 0u);
}

TEST_F(ShadowTest, ARangeInvalidationOfACoalescedMappingIsOneHostUnmap) {
  auto shadow = Shadow(host_);
  ASSERT_OK(as_.RegisterNotifier(shadow.get(), Iova(0), Iova(~0ull), kAll));
  MapEightContiguousPages();
  ASSERT_EQ(host_.maps, 1u);
  // The guest unmaps pages 0-5 with one range invalidation: six UNMAP events, one host unmap of
  // the eight pages, and one map of the two that stay (not one unmap and remap per page).
  model_.ClearRange(0x40000, 6 * kPage);
  as_.InvalidateRange(Iova(0x40000), 6 * kPage);
  EXPECT_EQ(shadow->unmap_calls(), 1u);
  EXPECT_EQ(host_.maps, 2u);
  ASSERT_EQ(host_.mappings.size(), 1u);
  EXPECT_EQ(host_.mappings.at(0x46000).size, 2 * kPage);
  EXPECT_EQ(host_.HostPage(0x47000), Host(0xf000));
}

TEST_F(ShadowTest, IsIdempotent) {
  auto shadow = Shadow(host_);
  ASSERT_OK(as_.RegisterNotifier(shadow.get(), Iova(0), Iova(~0ull), kAll));
  model_.SetPage(0x1000, kPage, 0x2000, kRw);
  as_.InvalidateAll();
  const uint64_t maps = host_.maps;
  ASSERT_OK(as_.Replay(shadow.get()));
  ASSERT_OK(as_.Replay(shadow.get()));
  EXPECT_EQ(host_.maps, maps) << "replaying what is mapped maps nothing";
  const IommuEvent stray[] = {{IommuEventType::kUnmap, {Iova(0x9000), kPage, 0, kRw}}};
  ASSERT_OK(shadow->Notify(stray));
  EXPECT_EQ(host_.unmaps, 0u) << "an UNMAP of something never mapped does nothing";
}

TEST_F(ShadowTest, BadTranslationsAndHostRefusalsBecomeGuestFaults) {
  auto shadow = Shadow(host_);
  ASSERT_OK(as_.RegisterNotifier(shadow.get(), Iova(0), Iova(~0ull), kAll));
  model_.SetPage(0x1000, kPage, 0x100000, kRw);   // MMIO.
  model_.SetPage(0x2000, kPage, 0x7000000, kRw);  // Nothing there.
  model_.SetPage(0x3000, kPage, 0x3000, kRw);     // Fine.
  as_.InvalidateAll();
  auto faults = as_.TakeFaults();
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_THAT(faults[0].reason, HasSubstr("guest address 0x100000 is not guest RAM (it is mmio"));
  EXPECT_EQ(host_.HostPage(0x3000), Host(0x3000)) << "the good page is mapped all the same";
  host_.fail_maps = 1;
  model_.SetPage(0x4000, kPage, 0x4000, kRw);
  as_.InvalidateRange(Iova(0x4000), kPage);
  faults = as_.TakeFaults();
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_THAT(faults[0].reason, HasSubstr("Cannot allocate memory"));
  // The guest retries (invalidates again after fixing nothing): the shadow maps it now.
  as_.InvalidateContext();
  EXPECT_EQ(host_.HostPage(0x4000), Host(0x4000));
}

TEST_F(ShadowTest, UsesPreRegistrationOnSpaprContainers) {
  vfio::testing::FakeVfioKernel kernel;
  kernel.extensions = {7};
  ASSERT_OK_AND_ASSIGN(auto container, vfio::VfioContainer::Open(kernel));
  ASSERT_OK(container->SetIommu(vfio::IommuType::kSpaprTceV2));
  auto shadow = Shadow(*container);
  // All guest RAM was registered before any map.
  EXPECT_EQ(kernel.container().registered.size(), 1u);
  EXPECT_THAT(kernel.container().mappings, IsEmpty());
  ASSERT_OK(as_.RegisterNotifier(shadow.get(), Iova(0), Iova(~0ull), kAll));
  model_.SetPage(0x1000, kPage, 0x2000, kRw);
  as_.InvalidateAll();
  EXPECT_EQ(kernel.container().mappings.count(0x1000), 1u);
  EXPECT_THAT(as_.TakeFaults(), IsEmpty());
  ASSERT_OK(as_.UnregisterNotifier(shadow.get()));
  shadow.reset();
  EXPECT_THAT(kernel.container().mappings, IsEmpty());
  EXPECT_THAT(kernel.container().registered, IsEmpty()) << "unregistered after the unmaps";
  EXPECT_EQ(kernel.container().enable_calls, 0);
}

// Randomized model test: random guest page-table changes, page/domain/global/context
// invalidations and replays across two devices; whenever the guest has invalidated everything it
// changed, each shadow (a fake Type1v2 container) must equal the guest's live mappings, and no
// duplicate or splitting unmap may ever reach the host.
TEST_F(ShadowTest, RandomOperationsKeepTheShadowEqualToTheGuest) {
  constexpr int kOps = 100000;
  constexpr uint64_t kIovaPages = 64, kRamPages = 256;
  std::mt19937_64 rng(7);
  PageTableIommu models[2];
  IommuAddressSpace spaces[2] = {{"dev0", models[0]}, {"dev1", models[1]}};
  FakeDmaBackend hosts[2];
  std::unique_ptr<VfioShadow> shadows[2] = {Shadow(hosts[0]), Shadow(hosts[1])};
  std::set<uint64_t> dirty[2];  // Pages changed and not yet invalidated.
  for (int d = 0; d < 2; ++d) {
    ASSERT_OK(spaces[d].RegisterNotifier(shadows[d].get(), Iova(0), Iova(~0ull), kAll));
  }
  IommuAddressSpace* all[] = {&spaces[0], &spaces[1]};
  int checks = 0;
  for (int op = 0; op < kOps; ++op) {
    const int d = static_cast<int>(rng() % 2);
    PageTableIommu& m = models[d];
    const uint64_t page = rng() % kIovaPages;
    switch (rng() % 10) {
      case 0:
      case 1:
      case 2: {  // The guest maps a page (often contiguous with its neighbour).
        auto prev = m.pages().find((page - 1) * kPage);
        uint64_t gpa = (rng() % kRamPages) * kPage;
        if (page > 0 && prev != m.pages().end() && rng() % 2) {
          gpa = std::min(prev->second.translated + kPage, (kRamPages - 1) * kPage);
        }
        m.SetPage(page * kPage, kPage, gpa, rng() % 4 ? kRw : IommuAccess::kRead);
        dirty[d].insert(page);
        break;
      }
      case 3:
      case 4: {  // The guest unmaps a few pages.
        const uint64_t n = 1 + rng() % 4;
        m.ClearRange(page * kPage, n * kPage);
        for (uint64_t p = page; p < page + n; ++p) dirty[d].insert(p);
        break;
      }
      case 5:
      case 6: {  // Page-selective invalidation(s), sometimes repeated.
        const uint64_t n = 1 + rng() % 4;
        for (uint64_t rep = 0; rep < 1 + rng() % 3; ++rep) {
          spaces[d].InvalidateRange(Iova(page * kPage), n * kPage);
        }
        for (uint64_t p = page; p < page + n; ++p) dirty[d].erase(p);
        break;
      }
      case 7:
        spaces[d].InvalidateAll();
        dirty[d].clear();
        break;
      case 8:
        if (rng() % 4 == 0) {
          spaces[d].InvalidateContext();
          dirty[d].clear();
        } else {
          InvalidateGlobal(all);
          dirty[0].clear();
          dirty[1].clear();
        }
        break;
      case 9:
        ASSERT_OK(spaces[d].Replay(shadows[d].get()));
        break;
    }
    for (int k = 0; k < 2; ++k) {
      ASSERT_EQ(hosts[k].duplicate_unmaps, 0u) << "op " << op;
      ASSERT_EQ(hosts[k].bisects, 0u) << "op " << op;
      ASSERT_THAT(spaces[k].TakeFaults(), IsEmpty()) << "op " << op;
      if (!dirty[k].empty()) continue;
      ++checks;
      for (uint64_t p = 0; p < kIovaPages; ++p) {
        auto guest = models[k].pages().find(p * kPage);
        const uint8_t* host = hosts[k].HostPage(p * kPage);
        if (guest == models[k].pages().end()) {
          ASSERT_EQ(host, nullptr) << "op " << op << " device " << k << " page " << p;
        } else {
          ASSERT_EQ(host, Host(guest->second.translated))
              << "op " << op << " device " << k << " page " << p;
          auto h = std::prev(hosts[k].mappings.upper_bound(p * kPage));
          ASSERT_EQ(h->second.writable, guest->second.perm == kRw);
        }
      }
    }
  }
  EXPECT_GT(checks, kOps / 2);
  std::printf("random shadow test: %d operations, %d full comparisons, %lu host maps, %lu unmaps\n",
              kOps, checks, static_cast<unsigned long>(hosts[0].maps + hosts[1].maps),
              static_cast<unsigned long>(hosts[0].unmaps + hosts[1].unmaps));
}

}  // namespace
}  // namespace vmmkit::iommu
