// File: vfio/ioctls.h
// -----------------------------------------------------------------------------
// The ioctl requests vfio/ issues on container, group, device and iommufd fds, for seccomp
// allow-lists. Attaching a device needs all of them; a device already attached needs only the
// runtime ones (DMA map and unmap, interrupts, reset, detach).
//
//   policy.AllowIoctls(vfio::RuntimeIoctls());

#ifndef VMMKIT_VFIO_IOCTLS_H_
#define VMMKIT_VFIO_IOCTLS_H_

#include <cstdint>
#include <vector>

namespace vmmkit::vfio {

// Every request vfio/ issues: opening, attaching, using and detaching, on every backend.
std::vector<uint32_t> AllIoctls();

// What an attached device's users issue: DMA map/unmap (type1, sPAPR, iommufd), interrupts,
// reset, region and IRQ queries, and detaching (group unset, iommufd detach, destroy).
std::vector<uint32_t> RuntimeIoctls();

}  // namespace vmmkit::vfio

#endif  // VMMKIT_VFIO_IOCTLS_H_
