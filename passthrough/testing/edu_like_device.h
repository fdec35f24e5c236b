// File: passthrough/testing/edu_like_device.h
// -----------------------------------------------------------------------------
// A vfio-pci function for vfio/'s FakeVfioKernel shaped like QEMU's edu with every interrupt kind,
// for tests of passthrough/: BAR0 1 MiB of memory (ID register 0x010000ed at 0x10) with the MSI-X
// table (8 vectors) at 0x2000 and the PBA at 0x3000 in it, BAR4 32 bytes of I/O, an MSI
// capability at 0x50 (64-bit, per-vector masking, 1 vector), MSI-X at 0x70, INTx pin A.
//
//   kernel.groups[5] = {};
//   kernel.devices["0000:00:03.0"] = EduLikeDevice(5);

#ifndef VMMKIT_PASSTHROUGH_TESTING_EDU_LIKE_DEVICE_H_
#define VMMKIT_PASSTHROUGH_TESTING_EDU_LIKE_DEVICE_H_

#include <cstdint>

#include "vfio/testing/fake_vfio_kernel.h"

namespace vmmkit::passthrough::testing {

inline constexpr uint64_t kEduMsixTable = 0x2000;  // In BAR0.
inline constexpr uint64_t kEduMsixPba = 0x3000;    // In BAR0.
inline constexpr uint16_t kEduMsixVectors = 8;

vfio::testing::FakeVfioKernel::Device EduLikeDevice(int group);

// The eventfd the fake device's VFIO_DEVICE_SET_IRQS calls leave for `vector` of irq `index` (-1:
// none): a call sets vectors [start, start + count); one with count 0 clears them all. Writing it
// is the device raising that interrupt.
int CurrentIrqFd(const vfio::testing::FakeVfioKernel::Device& device, uint32_t index,
                 uint32_t vector);

}  // namespace vmmkit::passthrough::testing

#endif  // VMMKIT_PASSTHROUGH_TESTING_EDU_LIKE_DEVICE_H_
