// File: vmm/vcpu_set.h
// -----------------------------------------------------------------------------
// VcpuSet runs a VM's vCPUs, one thread each, and stops, pauses and resumes them. Each thread
// loops on KVM_RUN and hands every exit to the caller's handler (device dispatch, shutdown
// requests); Kick() brings a vCPU out of KVM_RUN, even out of a halt the in-kernel LAPIC is
// emulating, so pausing and stopping never wait for the guest.
//
//   VcpuSet vcpus(std::move(created), [&](kvm::Vcpu& v, const kvm::VcpuExit& e) { ... },
//                 [&](kvm::Vcpu& v, const absl::Status& s) { RequestExit(...); });
//   vcpus.Start();
//   RETURN_IF_ERROR(vcpus.Pause(absl::Seconds(5)));   // every vCPU parked outside KVM_RUN
//   vcpus.Resume();
//   vcpus.Stop();                                      // joins the threads
//
// Thread-safety: Start, Stop, Pause and Resume are called from one control thread (the event
// loop, or the thread that owns the set); handlers run on the vCPU threads. tids() from any thread.

#ifndef VMMKIT_VMM_VCPU_SET_H_
#define VMMKIT_VMM_VCPU_SET_H_

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "kvm/vcpu.h"

namespace vmmkit::vmm {

class VcpuSet {
 public:
  using ExitHandler = std::function<void(kvm::Vcpu&, const kvm::VcpuExit&)>;
  // KVM_RUN failed: the vCPU's thread ends after calling this.
  using ErrorHandler = std::function<void(kvm::Vcpu&, const absl::Status&)>;
  // Called on each vCPU's thread just before its first KVM_RUN (a boot-time milestone).
  using EntryHandler = std::function<void(kvm::Vcpu&)>;

  VcpuSet(std::vector<std::unique_ptr<kvm::Vcpu>> vcpus, ExitHandler on_exit, ErrorHandler on_error,
          EntryHandler on_first_entry = nullptr);
  ~VcpuSet();  // Stop().
  VcpuSet(const VcpuSet&) = delete;
  VcpuSet& operator=(const VcpuSet&) = delete;

  // Starts one thread per vCPU ("vcpuN"). Once only.
  void Start();
  // Parks every vCPU outside KVM_RUN. DEADLINE_EXCEEDED (and all resumed) if they do not all park
  // within `timeout`; FAILED_PRECONDITION once stopped.
  absl::Status Pause(absl::Duration timeout);
  void Resume();
  // Makes every vCPU leave KVM_RUN and its loop, and joins the threads. Idempotent.
  void Stop();

  size_t size() const { return vcpus_.size(); }
  kvm::Vcpu& vcpu(size_t i) { return *vcpus_[i]; }
  // Host thread ids by vCPU index (0 until its thread has started).
  std::vector<int64_t> tids() const;

 private:
  void Loop(kvm::Vcpu& vcpu);

  const std::vector<std::unique_ptr<kvm::Vcpu>> vcpus_;
  const ExitHandler on_exit_;
  const ErrorHandler on_error_;
  const EntryHandler on_first_entry_;
  std::vector<std::thread> threads_;  // Control thread only.
  std::vector<std::atomic<int64_t>> tids_;
  std::atomic<bool> stopping_{false};

  Mutex mu_;
  CondVar changed_;  // paused_, parked_ or stopping_ changed.
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  size_t parked_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VCPU_SET_H_
