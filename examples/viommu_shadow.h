// File: examples/viommu_shadow.h
// -----------------------------------------------------------------------------
// For authors of other VMMs: a guest-visible IOMMU in front of a VFIO device, with vmmkit's
// vfio/, iommu/ and memory/ only (no vmm/, no KVM). Guest RAM is one memory/ region in a guest
// address space; the host function is opened in a type1 VFIO container; the guest's IOMMU is
// a page table (here a small map the "guest" writes); iommu/'s VfioShadow mirrors what the guest
// maps into the container, so the device can DMA exactly where the guest's IOMMU says.
//
//   RunViommuShadow({.group = 12, .bdf = "0000:00:03.0", .edu_dma = true}, std::cout);
//
// With `edu_dma`, the function is QEMU's edu and its DMA engine checks the shadow for real: a
// roundtrip through the guest's IOVAs arrives in guest RAM, and after the guest unmaps them a
// DMA there reaches nothing. //examples:viommu_shadow_test runs it on the fake VFIO kernel;
// //tests/lab:vfio_lab_test on L1's real VFIO with an edu.

#ifndef VMMKIT_EXAMPLES_VIOMMU_SHADOW_H_
#define VMMKIT_EXAMPLES_VIOMMU_SHADOW_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "vfio/syscalls.h"

namespace vmmkit::examples {

// Where the guest maps its DMA buffer: IOVA kIova -> guest-physical kBufferGpa, 4 pages.
inline constexpr uint64_t kIova = 0x100000;
inline constexpr uint64_t kBufferGpa = 0x800000;
inline constexpr uint64_t kBufferSize = 0x4000;

struct ViommuShadowOptions {
  int group = -1;                          // The function's IOMMU group (/dev/vfio/<group>).
  std::string bdf;                         // The function, bound to vfio-pci.
  bool edu_dma = false;                    // Check with edu's DMA engine.
  vfio::VfioSyscalls* syscalls = nullptr;  // Null: the real kernel.
  // Called with the guest's buffer mapped in the container, and again once it is unmapped.
  std::function<void(bool mapped)> on_step;
};

// Runs the example, narrating to `out`. Errors name the step.
absl::Status RunViommuShadow(const ViommuShadowOptions& options, std::ostream& out);

}  // namespace vmmkit::examples

#endif  // VMMKIT_EXAMPLES_VIOMMU_SHADOW_H_
