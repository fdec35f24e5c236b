// File: base/alongside.h
// -----------------------------------------------------------------------------
// Alongside runs work that mostly waits in the kernel (a device reset, an RCU grace period) on a
// helper thread while its owner goes on with other work; Join(), or destruction, waits for it.
// If no thread can be started the work runs in Join() instead: the same result, only not
// overlapped, so a caller never has to handle a failure to start a thread.
//
//   Alongside closer([&] { device.reset(); });  // vfio-pci resets the device as its fd closes.
//   UnmapGuestRam();                             // CPU work meanwhile.
//   closer.Join();

#ifndef VMMKIT_BASE_ALONGSIDE_H_
#define VMMKIT_BASE_ALONGSIDE_H_

#include <functional>
#include <thread>

namespace vmmkit {

class Alongside {
 public:
  explicit Alongside(std::function<void()> work);
  ~Alongside() { Join(); }
  Alongside(const Alongside&) = delete;
  Alongside& operator=(const Alongside&) = delete;

  // Waits for the work (or runs it, if it had no thread). Idempotent; call from the owner only.
  void Join();

 private:
  std::function<void()> work_;
  std::thread thread_;
};

}  // namespace vmmkit

#endif  // VMMKIT_BASE_ALONGSIDE_H_
