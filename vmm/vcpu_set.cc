#include "vmm/vcpu_set.h"

#include <pthread.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/thread_start.h"

namespace vmmkit::vmm {

VcpuSet::VcpuSet(std::vector<std::unique_ptr<kvm::Vcpu>> vcpus, ExitHandler on_exit,
                 ErrorHandler on_error, EntryHandler on_first_entry)
    : vcpus_(std::move(vcpus)),
      on_exit_(std::move(on_exit)),
      on_error_(std::move(on_error)),
      on_first_entry_(std::move(on_first_entry)),
      tids_(vcpus_.size()) {}

VcpuSet::~VcpuSet() { Stop(); }

void VcpuSet::Start() {
  if (!threads_.empty()) return;
  for (const auto& v : vcpus_) {
    kvm::Vcpu* vcpu = v.get();
    threads_.emplace_back([this, vcpu] {
      pthread_setname_np(pthread_self(), absl::StrCat("vcpu", vcpu->id()).c_str());
      ThreadStarted("vcpu");
      Loop(*vcpu);
    });
  }
}

void VcpuSet::Loop(kvm::Vcpu& vcpu) {
  tids_[vcpu.id()].store(::gettid(), std::memory_order_relaxed);
  bool entered = false;
  while (!stopping_.load(std::memory_order_acquire)) {
    {
      MutexLock lock(mu_);
      if (paused_) {
        ++parked_;
        changed_.SignalAll();
        changed_.Wait(
            mu_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !paused_ || stopping_.load(); });
        --parked_;
        continue;  // Look at stopping_ again before running.
      }
    }
    if (!entered) {
      entered = true;
      if (on_first_entry_) on_first_entry_(vcpu);
    }
    absl::StatusOr<kvm::VcpuExit> exit = vcpu.Run();
    if (!exit.ok()) {
      on_error_(vcpu, exit.status());
      return;
    }
    on_exit_(vcpu, *exit);
  }
}

absl::Status VcpuSet::Pause(absl::Duration timeout) {
  if (stopping_.load()) return absl::FailedPreconditionError("the vCPUs have stopped");
  {
    MutexLock lock(mu_);
    paused_ = true;
  }
  for (const auto& v : vcpus_) v->Kick();  // Out of KVM_RUN; they park at the top of Loop.
  MutexLock lock(mu_);
  const bool all = changed_.WaitFor(mu_, timeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return parked_ == threads_.size() || stopping_.load();
  });
  if (!all) {
    paused_ = false;
    changed_.SignalAll();
    return absl::DeadlineExceededError(
        absl::StrCat("only ", parked_, " of ", threads_.size(), " vCPUs stopped within ",
                     absl::FormatDuration(timeout), "; resumed them"));
  }
  return absl::OkStatus();
}

void VcpuSet::Resume() {
  MutexLock lock(mu_);
  paused_ = false;
  changed_.SignalAll();
}

void VcpuSet::Stop() {
  stopping_.store(true, std::memory_order_release);
  {
    MutexLock lock(mu_);
    paused_ = false;
    changed_.SignalAll();
  }
  for (const auto& v : vcpus_) v->Kick();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::vector<int64_t> VcpuSet::tids() const {
  std::vector<int64_t> out;
  for (const auto& t : tids_) out.push_back(t.load(std::memory_order_relaxed));
  return out;
}

}  // namespace vmmkit::vmm
