// File: irq/irq_lines.h
// -----------------------------------------------------------------------------
// IrqLines: how a device's eventfd reaches an input (GSI) of the VM's interrupt controller, so
// that devices raise interrupts the same way whichever irqchip the VM has.
//
//   KvmIrqLines       the in-kernel irqchip: KVM irqfds (KVM_IRQFD, with resample for INTx).
//   IoapicIrqLines    a split irqchip: the userspace Ioapic, fed by a thread that waits on the
//                     eventfds; a resampling line is level-triggered: asserted while the device
//                     signals, deasserted at the guest's EOI, when its resample eventfd is
//                     signalled (what KVM's resampler does, which a split irqchip does not have).
//   IoapicKvmSink     the Ioapic's pins as KVM MSI routes at GSI = pin (MsiRoutes::SetPinRoute),
//                     raised with KVM_IRQ_LINE.
//
//   irq::IoapicKvmSink sink(vm, routes, /*source_id=*/0xf0f8);
//   irq::Ioapic ioapic(sink);
//   ASSIGN_OR_RETURN(auto lines, irq::IoapicIrqLines::Create(ioapic));
//   ASSIGN_OR_RETURN(auto com1, irq::Irqfd::Create(*lines, 4));
//
// Thread-safety: Assign/Deassign from any thread; after Deassign returns, the line no longer
// reads or raises from that eventfd (the caller may close it).

#ifndef VMMKIT_IRQ_IRQ_LINES_H_
#define VMMKIT_IRQ_IRQ_LINES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "irq/ioapic.h"
#include "irq/msi_routes.h"
#include "kvm/vm.h"

namespace vmmkit::irq {

class IrqLines {
 public:
  virtual ~IrqLines() = default;
  // A write to `trigger` raises `gsi` (an edge, or a pulse on a level-triggered input).
  virtual absl::Status Assign(const EventFd& trigger, uint32_t gsi) = 0;
  // Level-triggered: a write to `trigger` asserts `gsi` until the guest EOIs it; then `resample`
  // is signalled, and the device writes `trigger` again if it still needs service.
  virtual absl::Status AssignWithResample(const EventFd& trigger, const EventFd& resample,
                                          uint32_t gsi) = 0;
  // Undoes Assign*. Succeeds for a line that is not assigned (as KVM does).
  virtual absl::Status Deassign(const EventFd& trigger, uint32_t gsi) = 0;
};

class KvmIrqLines : public IrqLines {
 public:
  explicit KvmIrqLines(kvm::Vm& vm) : vm_(vm) {}
  absl::Status Assign(const EventFd& trigger, uint32_t gsi) override;
  absl::Status AssignWithResample(const EventFd& trigger, const EventFd& resample,
                                  uint32_t gsi) override;
  absl::Status Deassign(const EventFd& trigger, uint32_t gsi) override;

 private:
  kvm::Vm& vm_;
};

class IoapicIrqLines : public IrqLines {
 public:
  // Starts the thread that waits on the lines. `ioapic` must outlive the result.
  static absl::StatusOr<std::unique_ptr<IoapicIrqLines>> Create(Ioapic& ioapic);
  ~IoapicIrqLines() override;  // Stops and joins the thread.
  IoapicIrqLines(const IoapicIrqLines&) = delete;
  IoapicIrqLines& operator=(const IoapicIrqLines&) = delete;

  absl::Status Assign(const EventFd& trigger, uint32_t gsi) override;
  absl::Status AssignWithResample(const EventFd& trigger, const EventFd& resample,
                                  uint32_t gsi) override;
  absl::Status Deassign(const EventFd& trigger, uint32_t gsi) override;
  size_t size() const;

 private:
  struct Line {
    uint64_t token;
    int trigger_fd;     // The caller's descriptor: how Deassign names the line.
    ScopedFd trigger;   // Our duplicate of it, which the thread waits on and reads.
    ScopedFd resample;  // Closed (-1): edge (a pulse per write).
    uint32_t gsi;
  };
  IoapicIrqLines(Ioapic& ioapic, ScopedFd epoll, EventFd stop);
  absl::Status Add(const EventFd& trigger, const EventFd* resample, uint32_t gsi);
  void Loop();
  // The pin's EOI handler: signals its resampling lines; false (deassert) if it has any.
  bool Resample(uint32_t gsi);

  Ioapic& ioapic_;
  const ScopedFd epoll_;
  const EventFd stop_;
  mutable Mutex mu_;  // After the Ioapic's lock (Resample runs under it).
  std::vector<Line> lines_ ABSL_GUARDED_BY(mu_);
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  std::thread thread_;
};

class IoapicKvmSink : public IoapicSink {
 public:
  // `source_id`: the IOAPIC's requester id for interrupt remapping. `vm` and `routes` must outlive
  // the sink; `routes` is used under the caller's lock (the Ioapic's registers are written under
  // the machine lock).
  IoapicKvmSink(kvm::Vm& vm, MsiRoutes& routes, uint16_t source_id)
      : vm_(vm), routes_(routes), source_id_(source_id) {}
  absl::Status SetRoute(uint32_t pin, std::optional<MsiMessage> msg) override {
    return routes_.SetPinRoute(pin, msg, source_id_);
  }
  absl::Status Raise(uint32_t pin) override { return vm_.SetIrqLine(pin, true); }

 private:
  kvm::Vm& vm_;
  MsiRoutes& routes_;
  const uint16_t source_id_;
};

}  // namespace vmmkit::irq

#endif  // VMMKIT_IRQ_IRQ_LINES_H_
