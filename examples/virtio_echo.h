// File: examples/virtio_echo.h
// -----------------------------------------------------------------------------
// For authors of other VMMs: a virtio device's data path with vmmkit's virtio/ and memory/ only
// (no vmm/, no KVM, no PCI). EchoDevice serves one split virtqueue: each request's
// device-readable bytes come back in its device-writable buffers, upper-cased, and the used
// length says how many. Everything it touches is reached through a DmaSpace, so the same code
// works behind a vIOMMU; everything in the ring is the guest's, so it bounds what it copies.
//
//   IdentityDmaSpace dma(guest_memory);
//   EchoDevice echo(dma, queue);               // queue: a SplitQueue the driver set up
//   ASSIGN_OR_RETURN(bool interrupt, echo.Process());   // on each notification
//
// //examples:virtio_echo_test drives it with virtio/'s driver harness, as Linux's virtio_ring
// would.

#ifndef VMMKIT_EXAMPLES_VIRTIO_ECHO_H_
#define VMMKIT_EXAMPLES_VIRTIO_ECHO_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "memory/dma_space.h"
#include "virtio/queue.h"

namespace vmmkit::examples {

class EchoDevice {
 public:
  // Echoes at most this much of a request (a chain can claim 4 GiB; the device need not).
  static constexpr uint32_t kMaxEcho = 4096;

  // `dma` must outlive the device.
  EchoDevice(const DmaSpace& dma, virtio::SplitQueue queue) : dma_(dma), queue_(queue) {}

  // Serves every chain the driver has made available; returns whether the driver wants an
  // interrupt. An error means the driver broke the queue (or gave memory the device cannot
  // reach): a real device would set DEVICE_NEEDS_RESET.
  absl::StatusOr<bool> Process();

  uint64_t requests() const { return requests_; }

 private:
  const DmaSpace& dma_;
  virtio::SplitQueue queue_;
  uint64_t requests_ = 0;
};

}  // namespace vmmkit::examples

#endif  // VMMKIT_EXAMPLES_VIRTIO_ECHO_H_
