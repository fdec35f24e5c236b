#include "vfio/container.h"

#include <linux/vfio.h>

#include <cerrno>
#include <cstring>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::vfio {
namespace {

using ::testing::ElementsAre;
using testing::FakeVfioKernel;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class ContainerTest : public ::testing::Test {
 protected:
  std::unique_ptr<VfioContainer> OpenWithIommu() {
    auto c = VfioContainer::Open(kernel_);
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_THAT((*c)->SetType1Iommu(), IsOkAndHolds(IommuType::kType1v2));
    kernel_.calls.clear();
    return std::move(c).value();
  }
  std::shared_ptr<GuestRegion> Ram(uint64_t size = 0x10000) {
    auto r = GuestRegion::Create(GuestAddress(0), size);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }
  FakeVfioKernel kernel_;
};

TEST_F(ContainerTest, OpenChecksTheApiVersionAndNamesThePath) {
  ASSERT_OK(VfioContainer::Open(kernel_, "/dev/vfio/vfio").status());
  EXPECT_THAT(kernel_.opened, ElementsAre("/dev/vfio/vfio"));
  kernel_.api_version = 1;
  EXPECT_THAT(VfioContainer::Open(kernel_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("returned 1")));
  kernel_.open_errno = ENOENT;
  EXPECT_THAT(VfioContainer::Open(kernel_, "/dev/vfio/vfio"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("open /dev/vfio/vfio")));
}

TEST_F(ContainerTest, SetType1IommuPrefersV2AndFallsBack) {
  ASSERT_OK_AND_ASSIGN(auto c, VfioContainer::Open(kernel_));
  EXPECT_THAT(c->SetType1Iommu(), IsOkAndHolds(IommuType::kType1v2));
  EXPECT_EQ(kernel_.iommu_type, 3u);

  FakeVfioKernel v1_only;
  v1_only.extensions = {1};
  ASSERT_OK_AND_ASSIGN(auto c1, VfioContainer::Open(v1_only));
  EXPECT_THAT(c1->SetType1Iommu(), IsOkAndHolds(IommuType::kType1));

  FakeVfioKernel none;
  none.extensions = {};
  ASSERT_OK_AND_ASSIGN(auto c0, VfioContainer::Open(none));
  EXPECT_THAT(c0->SetType1Iommu(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("vfio_iommu_type1")));
}

TEST_F(ContainerTest, SetIommuErrorsNameTheIoctlAndHint) {
  ASSERT_OK_AND_ASSIGN(auto c, VfioContainer::Open(kernel_));
  kernel_.fail_with[VFIO_SET_IOMMU] = EBUSY;
  EXPECT_THAT(
      c->SetType1Iommu(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("VFIO_SET_IOMMU type=3: Device or resource busy (the container is busy")));
}

TEST_F(ContainerTest, MapDmaPassesTheRightArguments) {
  auto c = OpenWithIommu();
  auto ram = Ram();
  ASSERT_OK(c->MapDma(Iova(0x100000), *ram, 0x2000, 0x4000, /*writable=*/true));
  ASSERT_EQ(kernel_.mappings.count(0x100000), 1u);
  const auto& m = kernel_.mappings.at(0x100000);
  EXPECT_EQ(m.size, 0x4000u);
  EXPECT_EQ(m.vaddr, reinterpret_cast<uintptr_t>(ram->host_address()) + 0x2000);
  EXPECT_EQ(m.flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
  ASSERT_OK(c->MapDma(Iova(0x200000), *ram, 0, 0x1000, /*writable=*/false));
  EXPECT_EQ(kernel_.mappings.at(0x200000).flags, VFIO_DMA_MAP_FLAG_READ);
}

TEST_F(ContainerTest, MapDmaRejectsBadRangesBeforeAnyIoctl) {
  auto c = OpenWithIommu();
  auto ram = Ram(0x4000);
  EXPECT_THAT(
      c->MapDma(Iova(0x1001), *ram, 0, 0x1000, true),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("VFIO_IOMMU_MAP_DMA iova=0x1001")));
  EXPECT_THAT(c->MapDma(Iova(0x1000), *ram, 0, 0, true),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c->MapDma(Iova(0x1000), *ram, 0x800, 0x1000, true),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c->MapDma(Iova(0x1000), *ram, 0x2000, 0x3000, true),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("outside the 0x4000-byte region")));
  EXPECT_THAT(c->MapDma(Iova(~uint64_t{0} - 0xfff), *ram, 0, 0x2000, true),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("wraps")));
  EXPECT_THAT(kernel_.calls, IsEmpty());
}

TEST_F(ContainerTest, KernelRefusalsComeBackWithRangeAndHint) {
  auto c = OpenWithIommu();
  auto ram = Ram();
  kernel_.fail_with[VFIO_IOMMU_MAP_DMA] = ENOMEM;
  EXPECT_THAT(
      c->MapDma(Iova(0x100000), *ram, 0, 0x1000, true),
      StatusIs(absl::StatusCode::kResourceExhausted,
               HasSubstr("VFIO_IOMMU_MAP_DMA iova=0x100000 size=0x1000: Cannot allocate memory "
                         "(pinning guest memory counts against RLIMIT_MEMLOCK")));
  kernel_.fail_with.clear();
  ASSERT_OK(c->MapDma(Iova(0x100000), *ram, 0, 0x2000, true));
  EXPECT_THAT(
      c->MapDma(Iova(0x101000), *ram, 0, 0x1000, true),
      StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("overlaps an existing mapping")));
}

TEST_F(ContainerTest, UnmapDmaReportsWhatWasThere) {
  auto c = OpenWithIommu();
  auto ram = Ram();
  ASSERT_OK(c->MapDma(Iova(0x100000), *ram, 0, 0x2000, true));
  EXPECT_THAT(c->UnmapDma(Iova(0x100000), 0x1000),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("VFIO_IOMMU_UNMAP_DMA")))
      << "bisecting a mapping";
  ASSERT_OK(c->UnmapDma(Iova(0x100000), 0x2000));
  EXPECT_THAT(kernel_.mappings, IsEmpty());
  EXPECT_THAT(c->UnmapDma(Iova(0x100000), 0x2000),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nothing is mapped there")));
  EXPECT_THAT(c->UnmapDma(Iova(0x100800), 0x1000), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ContainerTest, IommuInfoParsesTheCapabilityChain) {
  auto c = OpenWithIommu();
  ASSERT_OK_AND_ASSIGN(IommuInfo info, c->GetIommuInfo());
  EXPECT_EQ(info.page_sizes, 0x40201000u);
  ASSERT_EQ(info.valid_iovas.size(), 2u);
  EXPECT_EQ(info.valid_iovas[0].last, Iova(0xfedfffff));
  EXPECT_EQ(info.valid_iovas[1].start, Iova(0xfef00000));
  EXPECT_EQ(info.dma_mappings_available, 65535u);
  kernel_.dma_avail.reset();
  kernel_.iova_ranges.clear();
  ASSERT_OK_AND_ASSIGN(info, c->GetIommuInfo());
  EXPECT_THAT(info.valid_iovas, IsEmpty());
  EXPECT_FALSE(info.dma_mappings_available.has_value());
}

std::vector<uint8_t> CapBytes(uint16_t id, uint32_t next, uint32_t nr_iovas) {
  vfio_iommu_type1_info_cap_iova_range r{};
  r.header.id = id;
  r.header.next = next;
  r.nr_iovas = nr_iovas;
  std::vector<uint8_t> v(sizeof(r));
  std::memcpy(v.data(), &r, sizeof(r));
  return v;
}

TEST_F(ContainerTest, MalformedCapabilityChainsAreErrorsNotCrashes) {
  auto c = OpenWithIommu();
  const uint32_t base = sizeof(vfio_iommu_type1_info);
  // A chain that points back at itself.
  kernel_.raw_caps = CapBytes(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, base, 0);
  EXPECT_THAT(c->GetIommuInfo(), StatusIs(absl::StatusCode::kInternal, HasSubstr("malformed")));
  // More IOVA ranges than the buffer holds.
  kernel_.raw_caps = CapBytes(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 0, 1000);
  EXPECT_THAT(c->GetIommuInfo(), StatusIs(absl::StatusCode::kInternal, HasSubstr("do not fit")));
  // A capability offset past the end.
  kernel_.raw_caps = CapBytes(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 0, 0);
  kernel_.raw_cap_offset = 4096;
  EXPECT_THAT(c->GetIommuInfo(), StatusIs(absl::StatusCode::kInternal));
}

TEST_F(ContainerTest, EveryIoctlErrorNamesItsIoctl) {
  auto c = OpenWithIommu();
  auto ram = Ram();
  for (unsigned long req :
       {VFIO_CHECK_EXTENSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA}) {
    kernel_.fail_with[req] = EIO;
  }
  EXPECT_THAT(c->CheckExtension(3),
              StatusIs(::testing::_, HasSubstr("VFIO_CHECK_EXTENSION ext=3")));
  EXPECT_THAT(c->GetIommuInfo(), StatusIs(::testing::_, HasSubstr("VFIO_IOMMU_GET_INFO")));
  EXPECT_THAT(
      c->MapDma(Iova(0), *ram, 0, 0x1000, true),
      StatusIs(::testing::_, HasSubstr("VFIO_IOMMU_MAP_DMA iova=0x0 size=0x1000: Input/output")));
  EXPECT_THAT(c->UnmapDma(Iova(0), 0x1000),
              StatusIs(::testing::_, HasSubstr("VFIO_IOMMU_UNMAP_DMA iova=0x0 size=0x1000")));
}

}  // namespace
}  // namespace vmmkit::vfio
