#include "passthrough/testing/edu_like_device.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstring>
#include <map>
#include <vector>

namespace vmmkit::passthrough::testing {
namespace {

void Put32(std::vector<uint8_t>& c, size_t off, uint32_t v) { std::memcpy(&c[off], &v, 4); }
void Put16(std::vector<uint8_t>& c, size_t off, uint16_t v) { std::memcpy(&c[off], &v, 2); }

}  // namespace

vfio::testing::FakeVfioKernel::Device EduLikeDevice(int group) {
  using vfio::testing::FakeVfioKernel;
  FakeVfioKernel::Device d = FakeVfioKernel::PciDevice(group);
  std::vector<uint8_t> c(256, 0);
  Put16(c, 0x00, 0x1234);
  Put16(c, 0x02, 0x11e8);
  Put16(c, PCI_STATUS, PCI_STATUS_CAP_LIST);
  Put32(c, PCI_BASE_ADDRESS_0, 0xfea00000);
  Put32(c, PCI_BASE_ADDRESS_4, 0x0000c001);
  c[PCI_INTERRUPT_PIN] = 1;
  c[PCI_CAPABILITY_LIST] = 0x50;
  c[0x50] = PCI_CAP_ID_MSI, c[0x51] = 0x70;
  Put16(c, 0x52, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT);
  c[0x70] = PCI_CAP_ID_MSIX, c[0x71] = 0x00;
  Put16(c, 0x72, kEduMsixVectors - 1);
  Put32(c, 0x74, kEduMsixTable);  // BIR 0.
  Put32(c, 0x78, kEduMsixPba);    // BIR 0.
  d.regions[VFIO_PCI_CONFIG_REGION_INDEX].data = c;
  const uint32_t rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  d.regions[VFIO_PCI_BAR0_REGION_INDEX].data.assign(1 << 20, 0);
  Put32(d.regions[VFIO_PCI_BAR0_REGION_INDEX].data, 0x10, 0x010000ed);
  d.regions[4] = {false, rw, 0x20, {}, false, std::vector<uint8_t>(0x20, 0x5a)};
  return d;
}

int CurrentIrqFd(const vfio::testing::FakeVfioKernel::Device& device, uint32_t index,
                 uint32_t vector) {
  std::map<uint32_t, int> fds;
  for (const auto& set : device.irq_sets) {
    if (set.index != index || !(set.flags & VFIO_IRQ_SET_ACTION_TRIGGER)) continue;
    if (set.count == 0) fds.clear();
    for (uint32_t j = 0; j < set.fds.size(); ++j) fds[set.start + j] = set.fds[j];
  }
  auto it = fds.find(vector);
  return it == fds.end() ? -1 : it->second;
}

}  // namespace vmmkit::passthrough::testing
