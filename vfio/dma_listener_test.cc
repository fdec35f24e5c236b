#include "vfio/dma_listener.h"

#include <linux/vfio.h>

#include <algorithm>
#include <cerrno>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/address_space.h"
#include "vfio/container.h"
#include "vfio/iommufd.h"
#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::vfio {
namespace {

using ::testing::ElementsAre;
using testing::FakeVfioKernel;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::shared_ptr<GuestRegion> Ram(uint64_t start, uint64_t size) {
  auto r = GuestRegion::Create(GuestAddress(start), size);
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

std::vector<uint64_t> Iovas(const std::map<uint64_t, FakeVfioKernel::Mapping>& m) {
  std::vector<uint64_t> out;
  for (const auto& [iova, mapping] : m) out.push_back(iova);
  return out;
}

class DmaListenerTest : public ::testing::Test {
 protected:
  std::shared_ptr<VfioContainer> Type1() {
    auto c = VfioContainer::Open(kernel_);
    EXPECT_OK(c.status());
    EXPECT_OK((*c)->SetType1Iommu().status());
    return *c;
  }
  std::shared_ptr<VfioContainer> Spapr() {
    kernel_.extensions = {7};
    kernel_.spapr_dma32_size = 0x80000000u;
    auto c = VfioContainer::Open(kernel_);
    EXPECT_OK(c.status());
    EXPECT_OK((*c)->SetIommu(IommuType::kSpaprTceV2));
    return *c;
  }
  FakeVfioKernel kernel_;
  AddressSpace space_{"dma"};
};

TEST_F(DmaListenerTest, MapsRamAtItsGuestAddressAndNeverMmio) {
  auto c = Type1();
  DmaMappingListener mapping(*c);
  ASSERT_OK(space_.AddRam("low", Ram(0, 0x100000)));
  ASSERT_OK(space_.AddMmio("ioapic", GuestAddress(0xfec00000), 0x1000));
  ASSERT_OK(space_.RegisterListener(&mapping));  // Replays what is there.
  ASSERT_OK(space_.AddRam("high", Ram(0x100000000, 0x200000)));
  ASSERT_OK(space_.AddMmio("bar", GuestAddress(0xc0000000), 0x100000));
  // A passed-through BAR the guest reaches through a KVM slot is not RAM: no peer-to-peer DMA.
  ASSERT_OK(space_.AddDeviceMemory("bar-mapped", Ram(0xd0000000, 0x100000)));
  EXPECT_THAT(Iovas(kernel_.container().mappings), ElementsAre(0, 0x100000000));
  EXPECT_EQ(kernel_.container().mappings.at(0x100000000).size, 0x200000u);
  ASSERT_EQ(mapping.mappings().size(), 2u);
  EXPECT_EQ(mapping.mappings()[1].last, Iova(0x1001fffff));

  ASSERT_OK(space_.Remove(GuestAddress(0)));
  EXPECT_THAT(Iovas(kernel_.container().mappings), ElementsAre(0x100000000));
  ASSERT_OK(space_.UnregisterListener(&mapping));
  EXPECT_THAT(kernel_.container().mappings, IsEmpty());
  EXPECT_THAT(mapping.mappings(), IsEmpty());
}

TEST_F(DmaListenerTest, PreRegistrationAlwaysRunsBeforeMappingAndUndoesAfter) {
  auto c = Spapr();
  DmaMappingListener mapping(*c);
  DmaPreRegistrationListener prereg(*c);
  // Registered in the "wrong" order: priorities still put pre-registration first.
  ASSERT_OK(space_.RegisterListener(&mapping));
  ASSERT_OK(space_.RegisterListener(&prereg));
  kernel_.calls.clear();
  ASSERT_OK(space_.AddRam("ram", Ram(0x10000000, 0x100000)));
  ASSERT_OK(space_.AddMmio("mmio", GuestAddress(0x20000000), 0x1000));
  EXPECT_THAT(kernel_.calls, ElementsAre(VFIO_IOMMU_SPAPR_REGISTER_MEMORY, VFIO_IOMMU_GET_INFO,
                                         VFIO_IOMMU_MAP_DMA));
  EXPECT_EQ(prereg.registered().size(), 1u);
  kernel_.calls.clear();
  ASSERT_OK(space_.Remove(GuestAddress(0x10000000)));
  EXPECT_THAT(kernel_.calls, ElementsAre(VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY));
  EXPECT_THAT(kernel_.container().registered, IsEmpty());
  EXPECT_THAT(prereg.registered(), IsEmpty());
  EXPECT_EQ(kernel_.container().enable_calls, 0);
}

TEST_F(DmaListenerTest, PreRegistrationIsANoOpForBackendsThatDoNotNeedIt) {
  auto c = Type1();
  DmaPreRegistrationListener prereg(*c);
  DmaMappingListener mapping(*c);
  ASSERT_OK(space_.RegisterListener(&prereg));
  ASSERT_OK(space_.RegisterListener(&mapping));
  kernel_.calls.clear();
  ASSERT_OK(space_.AddRam("ram", Ram(0, 0x10000)));
  EXPECT_THAT(kernel_.calls,
              ElementsAre(VFIO_IOMMU_GET_INFO, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA))
      << "no registration; the capabilities are read (twice: the size, then the chain)";
  EXPECT_THAT(prereg.registered(), IsEmpty());
}

TEST_F(DmaListenerTest, AFailedMapRollsBackItsPreRegistration) {
  auto c = Spapr();
  DmaPreRegistrationListener prereg(*c);
  DmaMappingListener mapping(*c);
  ASSERT_OK(space_.RegisterListener(&prereg));
  ASSERT_OK(space_.RegisterListener(&mapping));
  kernel_.fail_with[VFIO_IOMMU_MAP_DMA] = ENOMEM;
  EXPECT_THAT(space_.AddRam("ram", Ram(0x10000000, 0x100000)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("vfio-dma-map: map ram [0x10000000, 0x100fffff] RAM in "
                                       "sPAPR TCE v2 container: VFIO_IOMMU_MAP_DMA iova=0x10000000 "
                                       "size=0x100000"),
                             HasSubstr("RLIMIT_MEMLOCK"))));
  EXPECT_THAT(kernel_.container().registered, IsEmpty()) << "pre-registration undone";
  EXPECT_THAT(kernel_.container().mappings, IsEmpty());
  EXPECT_THAT(space_.regions(), IsEmpty());
  EXPECT_THAT(prereg.registered(), IsEmpty());
}

TEST_F(DmaListenerTest, AMapFailingMidwayThroughReplayLeavesNothingMapped) {
  auto c = Type1();
  for (uint64_t i = 0; i < 4; ++i) {
    ASSERT_OK(space_.AddRam(absl::StrCat("ram", i), Ram(i << 30, 0x100000)));
  }
  DmaMappingListener mapping(*c);
  kernel_.fail_after[VFIO_IOMMU_MAP_DMA] = {2, EBUSY};  // The third map fails.
  EXPECT_THAT(space_.RegisterListener(&mapping),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("map ram2 [0x80000000, 0x800fffff]"),
                             HasSubstr("iova=0x80000000 size=0x100000"))));
  EXPECT_THAT(kernel_.container().mappings, IsEmpty()) << "the two maps that worked are undone";
  EXPECT_THAT(mapping.mappings(), IsEmpty());
  // And the listener works once the kernel does.
  ASSERT_OK(space_.RegisterListener(&mapping));
  EXPECT_EQ(kernel_.container().mappings.size(), 4u);
  ASSERT_OK(space_.UnregisterListener(&mapping));
}

TEST_F(DmaListenerTest, RamInTheHostsReservedWindowIsRefusedWithTheValidRanges) {
  auto c = Type1();
  DmaMappingListener mapping(*c);
  ASSERT_OK(space_.RegisterListener(&mapping));
  EXPECT_THAT(
      space_.AddRam("bad", Ram(0xfee00000, 0x100000)),
      StatusIs(absl::StatusCode::kOutOfRange,
               AllOf(HasSubstr("map bad [0xfee00000, 0xfeefffff] RAM in type1v2 container"),
                     HasSubstr("outside the host IOMMU's valid IOVA ranges [0x0-0xfedfffff"))));
  EXPECT_THAT(kernel_.container().mappings, IsEmpty());
}

TEST_F(DmaListenerTest, WorksOnIommufdUnchanged) {
  ASSERT_OK_AND_ASSIGN(auto iommufd, Iommufd::Open(kernel_));
  ASSERT_OK_AND_ASSIGN(auto ioas, IommufdIoas::Allocate(iommufd));
  DmaPreRegistrationListener prereg(*ioas);
  DmaMappingListener mapping(*ioas);
  ASSERT_OK(space_.RegisterListener(&prereg));
  ASSERT_OK(space_.RegisterListener(&mapping));
  ASSERT_OK(space_.AddRam("ram", Ram(0x100000, 0x100000)));
  ASSERT_OK(space_.AddMmio("mmio", GuestAddress(0xd0000000), 0x1000));
  EXPECT_THAT(Iovas(kernel_.ioases[ioas->id()].mappings), ElementsAre(0x100000));
  ASSERT_OK(space_.Remove(GuestAddress(0x100000)));
  EXPECT_THAT(kernel_.ioases[ioas->id()].mappings, IsEmpty());
  ASSERT_OK(space_.UnregisterListener(&mapping));
  ASSERT_OK(space_.UnregisterListener(&prereg));
}

TEST_F(DmaListenerTest, AnUnmapTheKernelRefusesIsLoggedAndForgotten) {
  auto c = Type1();
  DmaMappingListener mapping(*c);
  ASSERT_OK(space_.RegisterListener(&mapping));
  ASSERT_OK(space_.AddRam("ram", Ram(0, 0x10000)));
  kernel_.fail_with[VFIO_IOMMU_UNMAP_DMA] = EIO;
  ASSERT_OK(space_.Remove(GuestAddress(0)));  // A removal cannot be vetoed.
  EXPECT_THAT(mapping.mappings(), IsEmpty());
  ASSERT_OK(space_.UnregisterListener(&mapping));
}

}  // namespace
}  // namespace vmmkit::vfio
