#include "vfio/iommufd.h"

#include <linux/vfio.h>

#include <cerrno>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vfio/device.h"
#include "vfio/internal/vfio_abi.h"
#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::vfio {
namespace {

using ::testing::ElementsAre;
using testing::FakeVfioKernel;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class IommufdTest : public ::testing::Test {
 protected:
  void SetUp() override { kernel_.devices["vfio0"] = FakeVfioKernel::PciDevice(-1); }
  std::shared_ptr<GuestRegion> Ram(uint64_t size = 0x10000) {
    auto r = GuestRegion::Create(GuestAddress(0), size);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }
  FakeVfioKernel kernel_;
};

TEST_F(IommufdTest, CdevDeviceBindsAttachesAndMapsThroughTheIoas) {
  ASSERT_OK_AND_ASSIGN(auto iommufd, Iommufd::Open(kernel_));
  ASSERT_OK_AND_ASSIGN(auto ioas, IommufdIoas::Allocate(iommufd));
  EXPECT_EQ(ioas->name(), absl::StrCat("iommufd IOAS ", ioas->id()));
  ASSERT_OK_AND_ASSIGN(auto dev, VfioDevice::OpenCdev("/dev/vfio/devices/vfio0", kernel_));
  ASSERT_OK_AND_ASSIGN(uint32_t devid, dev->BindIommufd(iommufd));
  EXPECT_EQ(devid, 100u);
  EXPECT_TRUE(dev->info().is_pci());
  ASSERT_OK(dev->AttachIoas(*ioas));
  EXPECT_EQ(kernel_.devices["vfio0"].attached_ioas, ioas->id());

  auto ram = Ram();
  DmaBackend& dma = *ioas;  // Consumers see only the backend interface.
  EXPECT_FALSE(dma.needs_pre_registration());
  ASSERT_OK(dma.RegisterMemory(*ram, 0, 0x10000));  // Accepted and ignored.
  ASSERT_OK(dma.MapDma(Iova(0x100000), *ram, 0x1000, 0x2000, /*writable=*/false));
  const auto& m = kernel_.ioases[ioas->id()].mappings.at(0x100000);
  EXPECT_EQ(m.size, 0x2000u);
  EXPECT_EQ(m.vaddr, reinterpret_cast<uintptr_t>(ram->host_address()) + 0x1000);
  EXPECT_EQ(m.flags, internal::kIommuIoasMapFixedIova | internal::kIommuIoasMapReadable);
  EXPECT_THAT(dma.MapDma(Iova(0x101000), *ram, 0, 0x1000, true),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("IOMMU_IOAS_MAP ioas=")));
  ASSERT_OK(dma.UnmapDma(Iova(0x100000), 0x2000));
  EXPECT_THAT(dma.UnmapDma(Iova(0x100000), 0x2000),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nothing is mapped there")));

  ASSERT_OK_AND_ASSIGN(IommuCapabilities caps, dma.GetCapabilities());
  ASSERT_EQ(caps.valid_iovas.size(), 2u);
  EXPECT_EQ(caps.valid_iovas[0].last, Iova(0xfedfffff));
  EXPECT_EQ(caps.page_sizes & 0xfff, 0u);
  EXPECT_NE(caps.page_sizes & 0x1000, 0u);
  EXPECT_THAT(dma.MapDma(Iova(0xfee00000), *ram, 0, 0x1000, true),
              StatusIs(absl::StatusCode::kInvalidArgument));

  // The kernel will not destroy an IOAS a device is attached to; detach first.
  ASSERT_OK(dev->DetachIoas());
  EXPECT_THAT(dev->DetachIoas(), StatusIs(absl::StatusCode::kFailedPrecondition));
  const uint32_t id = ioas->id();
  ioas.reset();
  EXPECT_EQ(kernel_.ioases.count(id), 0u);
}

TEST_F(IommufdTest, IovaRangesGrowTheBufferWhenTheKernelHasMore) {
  kernel_.ioas_ranges.clear();
  for (uint64_t i = 0; i < 20; ++i) kernel_.ioas_ranges.push_back({i << 32, (i << 32) + 0xfff});
  ASSERT_OK_AND_ASSIGN(auto iommufd, Iommufd::Open(kernel_));
  ASSERT_OK_AND_ASSIGN(auto ioas, IommufdIoas::Allocate(iommufd));
  uint64_t alignment = 0;
  ASSERT_OK_AND_ASSIGN(auto ranges, iommufd->IoasIovaRanges(ioas->id(), &alignment));
  EXPECT_EQ(ranges.size(), 20u);
  EXPECT_EQ(ranges[19].start, Iova(19ull << 32));
  EXPECT_EQ(alignment, 4096u);
}

TEST_F(IommufdTest, ErrorsNameTheIoctlAndTheObject) {
  kernel_.has_iommufd = false;
  EXPECT_THAT(Iommufd::Open(kernel_),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("the kernel has no iommufd")));
  kernel_.has_iommufd = true;
  ASSERT_OK_AND_ASSIGN(auto iommufd, Iommufd::Open(kernel_));
  EXPECT_THAT(IommufdIoas::Allocate(nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  kernel_.fail_with[internal::kIommuIoasAlloc] = ENOMEM;
  EXPECT_THAT(IommufdIoas::Allocate(iommufd),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("IOMMU_IOAS_ALLOC")));
  kernel_.fail_with.clear();
  ASSERT_OK_AND_ASSIGN(auto ioas, IommufdIoas::Allocate(iommufd));
  auto ram = Ram();
  kernel_.fail_with[internal::kIommuIoasMap] = ENOMEM;
  EXPECT_THAT(ioas->MapDma(Iova(0x100000), *ram, 0, 0x1000, true),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("size=0x1000: Cannot allocate memory (pinning guest memory")));
  kernel_.fail_with.clear();
  EXPECT_THAT(ioas->MapDma(Iova(0x100800), *ram, 0, 0x1000, true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("4 KiB aligned")));
  EXPECT_THAT(iommufd->IoasIovaRanges(999),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("IOMMU_IOAS_IOVA_RANGES ioas=999")));
  EXPECT_THAT(iommufd->Destroy(999),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("IOMMU_DESTROY id=999")));
}

TEST_F(IommufdTest, CdevRulesAreEnforced) {
  ASSERT_OK_AND_ASSIGN(auto iommufd, Iommufd::Open(kernel_));
  ASSERT_OK_AND_ASSIGN(auto other_fd, Iommufd::Open(kernel_));
  ASSERT_OK_AND_ASSIGN(auto other_ioas, IommufdIoas::Allocate(other_fd));
  EXPECT_THAT(VfioDevice::OpenCdev("/dev/vfio/devices/vfio9", kernel_),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/dev/vfio/devices/vfio9")));
  ASSERT_OK_AND_ASSIGN(auto dev, VfioDevice::OpenCdev("/dev/vfio/devices/vfio0", kernel_));
  // Nothing works before the bind; the kernel says EINVAL and we say which ioctl.
  EXPECT_THAT(dev->AttachIoas(*other_ioas),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("bind the device")));
  EXPECT_THAT(dev->BindIommufd(nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(dev->BindIommufd(iommufd).status());
  EXPECT_THAT(dev->BindIommufd(iommufd),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already bound")));
  // An IOAS of another iommufd is refused before the ioctl.
  EXPECT_THAT(dev->AttachIoas(*other_ioas), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(auto ioas, IommufdIoas::Allocate(iommufd));
  ASSERT_OK(dev->AttachIoas(*ioas));
  EXPECT_THAT(iommufd->Destroy(ioas->id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("IOMMU_DESTROY")));
  // Closing the device detaches it, as in the kernel; then the IOAS can go.
  dev.reset();
  const uint32_t id = ioas->id();
  ioas.reset();
  EXPECT_EQ(kernel_.ioases.count(id), 0u);
  EXPECT_THAT(kernel_.OpenFds(), ::testing::Contains(::testing::Pair("iommufd", 2)));
}

}  // namespace
}  // namespace vmmkit::vfio
