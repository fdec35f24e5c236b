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
  std::shared_ptr<VfioContainer> OpenWithIommu() {
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
  EXPECT_EQ(kernel_.container().iommu_type, 3u);
  EXPECT_THAT(c->SetIommu(IommuType::kType1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already uses type1v2")));

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
  EXPECT_THAT(c->SetType1Iommu(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("VFIO_SET_IOMMU type=3 (type1v2): Device or "
                                                     "resource busy (the IOMMU context is busy")));
}

TEST_F(ContainerTest, MapDmaPassesTheRightArguments) {
  auto c = OpenWithIommu();
  auto ram = Ram();
  ASSERT_OK(c->MapDma(Iova(0x100000), *ram, 0x2000, 0x4000, /*writable=*/true));
  ASSERT_EQ(kernel_.container().mappings.count(0x100000), 1u);
  const auto& m = kernel_.container().mappings.at(0x100000);
  EXPECT_EQ(m.size, 0x4000u);
  EXPECT_EQ(m.vaddr, reinterpret_cast<uintptr_t>(ram->host_address()) + 0x2000);
  EXPECT_EQ(m.flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
  ASSERT_OK(c->MapDma(Iova(0x200000), *ram, 0, 0x1000, /*writable=*/false));
  EXPECT_EQ(kernel_.container().mappings.at(0x200000).flags, VFIO_DMA_MAP_FLAG_READ);
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
  EXPECT_THAT(
      c->UnmapDma(Iova(0x100000), 0x1000),
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          HasSubstr(
              "VFIO_IOMMU_UNMAP_DMA iova=0x100000 size=0x1000: Invalid argument (check the range")))
      << "bisecting a mapping";
  ASSERT_OK(c->UnmapDma(Iova(0x100000), 0x2000));
  EXPECT_THAT(kernel_.container().mappings, IsEmpty());
  EXPECT_THAT(c->UnmapDma(Iova(0x100000), 0x2000),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nothing is mapped there")));
  EXPECT_THAT(c->UnmapDma(Iova(0x100800), 0x1000), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ContainerTest, IommuInfoParsesTheCapabilityChain) {
  auto c = OpenWithIommu();
  ASSERT_OK_AND_ASSIGN(IommuCapabilities info, c->GetType1Info());
  EXPECT_EQ(info.page_sizes, 0x40201000u);
  ASSERT_EQ(info.valid_iovas.size(), 2u);
  EXPECT_EQ(info.valid_iovas[0].last, Iova(0xfedfffff));
  EXPECT_EQ(info.valid_iovas[1].start, Iova(0xfef00000));
  EXPECT_EQ(info.dma_mappings_available, 65535u);
  kernel_.dma_avail.reset();
  kernel_.iova_ranges.clear();
  ASSERT_OK_AND_ASSIGN(info, c->GetType1Info());
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
  EXPECT_THAT(c->GetType1Info(), StatusIs(absl::StatusCode::kInternal, HasSubstr("malformed")));
  // More IOVA ranges than the buffer holds.
  kernel_.raw_caps = CapBytes(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 0, 1000);
  EXPECT_THAT(c->GetType1Info(), StatusIs(absl::StatusCode::kInternal, HasSubstr("do not fit")));
  // A capability offset past the end.
  kernel_.raw_caps = CapBytes(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 0, 0);
  kernel_.raw_cap_offset = 4096;
  EXPECT_THAT(c->GetType1Info(), StatusIs(absl::StatusCode::kInternal));
}

TEST_F(ContainerTest, EveryIoctlErrorNamesItsIoctl) {
  auto c = OpenWithIommu();
  auto ram = Ram();
  EXPECT_EQ(c->name(), "type1v2 container");
  for (unsigned long req :
       {VFIO_CHECK_EXTENSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA}) {
    kernel_.fail_with[req] = EIO;
  }
  EXPECT_THAT(c->CheckExtension(3),
              StatusIs(::testing::_, HasSubstr("VFIO_CHECK_EXTENSION ext=3")));
  EXPECT_THAT(c->GetType1Info(), StatusIs(::testing::_, HasSubstr("VFIO_IOMMU_GET_INFO")));
  EXPECT_THAT(
      c->MapDma(Iova(0), *ram, 0, 0x1000, true),
      StatusIs(::testing::_, HasSubstr("VFIO_IOMMU_MAP_DMA iova=0x0 size=0x1000: Input/output")));
  EXPECT_THAT(c->UnmapDma(Iova(0), 0x1000),
              StatusIs(::testing::_, HasSubstr("VFIO_IOMMU_UNMAP_DMA iova=0x0 size=0x1000")));
}

TEST_F(ContainerTest, NothingMapsBeforeAnIommuModelIsSet) {
  ASSERT_OK_AND_ASSIGN(auto c, VfioContainer::Open(kernel_));
  auto ram = Ram();
  EXPECT_THAT(c->MapDma(Iova(0), *ram, 0, 0x1000, true),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no IOMMU model")));
  EXPECT_THAT(c->GetCapabilities(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(c->needs_pre_registration());
  // Pre-registration is accepted (and checked) on backends that do not need it.
  ASSERT_OK(c->SetType1Iommu().status());
  ASSERT_OK(c->RegisterMemory(*ram, 0, 0x1000));
  EXPECT_THAT(c->RegisterMemory(*ram, 0, 0x100), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(IommuCapabilities caps, c->GetCapabilities());
  EXPECT_FALSE(caps.needs_pre_registration);
  EXPECT_OK(caps.CheckIovaRange(Iova(0xfed00000), 0x100000));
  EXPECT_THAT(
      caps.CheckIovaRange(Iova(0xfee00000), 0x1000),
      StatusIs(absl::StatusCode::kOutOfRange,
               HasSubstr("valid IOVA ranges [0x0-0xfedfffff, 0xfef00000-0xffffffffffffffff]")));
}

// sPAPR TCE v2 (POWER): memory is pre-registered before it is mapped, IOVAs live in DMA windows,
// and VFIO_IOMMU_ENABLE (v1's way to start) is never called.
class SpaprTest : public ContainerTest {
 protected:
  std::shared_ptr<VfioContainer> OpenSpapr() {
    kernel_.extensions = {7};
    auto c = VfioContainer::Open(kernel_);
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_OK((*c)->SetIommu(IommuType::kSpaprTceV2));
    return std::move(c).value();
  }
};

TEST_F(SpaprTest, PreRegistrationComesBeforeMappingAndEnableIsNeverCalled) {
  auto c = OpenSpapr();
  EXPECT_TRUE(c->needs_pre_registration());
  EXPECT_EQ(c->name(), "sPAPR TCE v2 container");
  auto ram = Ram(0x10000);
  EXPECT_THAT(c->MapDma(Iova(0x10000), *ram, 0, 0x4000, true),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not pre-registered")));
  ASSERT_OK(c->RegisterMemory(*ram, 0, 0x10000));
  EXPECT_EQ(kernel_.container().registered.at(reinterpret_cast<uintptr_t>(ram->host_address())),
            0x10000u);
  ASSERT_OK(c->MapDma(Iova(0x10000), *ram, 0x4000, 0x4000, true));
  EXPECT_EQ(kernel_.container().mappings.at(0x10000).vaddr,
            reinterpret_cast<uintptr_t>(ram->host_address()) + 0x4000);
  // The kernel refuses to unregister mapped memory.
  EXPECT_THAT(c->UnregisterMemory(*ram, 0, 0x10000),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY")));
  ASSERT_OK(c->UnmapDma(Iova(0x10000), 0x4000));
  ASSERT_OK(c->UnregisterMemory(*ram, 0, 0x10000));
  EXPECT_THAT(kernel_.container().registered, IsEmpty());
  EXPECT_THAT(c->UnregisterMemory(*ram, 0, 0x10000), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(kernel_.container().enable_calls, 0);
}

TEST_F(SpaprTest, MapsMustFallInADmaWindow) {
  auto c = OpenSpapr();
  auto ram = Ram(0x10000);
  ASSERT_OK(c->RegisterMemory(*ram, 0, 0x10000));
  // The default window is [0, 1 GiB).
  EXPECT_THAT(c->MapDma(Iova(0x40000000), *ram, 0, 0x1000, true),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("outside every DMA window")));
  ASSERT_OK_AND_ASSIGN(SpaprTceInfo info, c->GetSpaprInfo());
  EXPECT_EQ(info.dma32_window.last, Iova(0x3fffffff));
  EXPECT_TRUE(info.has_ddw);
  EXPECT_EQ(info.max_dynamic_windows, 2u);
  ASSERT_OK_AND_ASSIGN(Iova window, c->CreateDmaWindow(16, 1ull << 32, 1));
  EXPECT_EQ(window, Iova(1ull << 59));
  ASSERT_OK_AND_ASSIGN(IommuCapabilities caps, c->GetCapabilities());
  EXPECT_TRUE(caps.needs_pre_registration);
  ASSERT_EQ(caps.valid_iovas.size(), 2u);
  EXPECT_EQ(caps.valid_iovas[1].last, Iova((1ull << 59) + (1ull << 32) - 1));
  ASSERT_OK(c->MapDma(Iova(1ull << 59), *ram, 0, 0x10000, true));
  ASSERT_OK(c->UnmapDma(Iova(1ull << 59), 0x10000));
  ASSERT_OK(c->RemoveDmaWindow(window));
  EXPECT_THAT(c->RemoveDmaWindow(window), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(c->MapDma(Iova(1ull << 59), *ram, 0, 0x1000, true),
              StatusIs(absl::StatusCode::kOutOfRange));
}

TEST_F(SpaprTest, WindowAndRegistrationErrors) {
  auto c = OpenSpapr();
  auto ram = Ram(0x10000);
  EXPECT_THAT(c->CreateDmaWindow(11, 1 << 20, 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c->CreateDmaWindow(16, 0x1000, 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c->CreateDmaWindow(16, 1 << 20, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  kernel_.spapr_max_windows = 1;  // The default window uses it up.
  EXPECT_THAT(c->CreateDmaWindow(16, 1 << 20, 1),
              StatusIs(::testing::_, HasSubstr("VFIO_IOMMU_SPAPR_TCE_CREATE page_shift=16")));
  kernel_.fail_with[VFIO_IOMMU_SPAPR_REGISTER_MEMORY] = ENOMEM;
  EXPECT_THAT(c->RegisterMemory(*ram, 0, 0x10000),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("RLIMIT_MEMLOCK")));
  EXPECT_THAT(
      c->RegisterMemory(*ram, 0x8000, 0x10000),
      StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("outside the 0x10000-byte region")));
  // Type1 containers have no windows.
  ASSERT_OK_AND_ASSIGN(auto t1, VfioContainer::Open(kernel_));
  EXPECT_THAT(t1->CreateDmaWindow(16, 1 << 20, 1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not sPAPR TCE v2")));
}

TEST_F(SpaprTest, AFailedInfoQueryLeavesTheModelUnset) {
  kernel_.extensions = {7};
  ASSERT_OK_AND_ASSIGN(auto c, VfioContainer::Open(kernel_));
  kernel_.fail_with[VFIO_IOMMU_SPAPR_TCE_GET_INFO] = EIO;
  EXPECT_THAT(c->SetIommu(IommuType::kSpaprTceV2),
              StatusIs(::testing::_, HasSubstr("VFIO_IOMMU_SPAPR_TCE_GET_INFO")));
  EXPECT_FALSE(c->iommu_type().has_value());
}

}  // namespace
}  // namespace vmmkit::vfio
