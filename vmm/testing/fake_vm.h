// File: vmm/testing/fake_vm.h
// -----------------------------------------------------------------------------
// Testonly: what VmController drives, without a VM: FakeVm (VmOperations that count calls and
// fail on demand), InlineLoop (runs work at once; delayed work waits for the test) and ThreadLoop
// (a real event-loop thread, for concurrency tests under TSan).

#ifndef VMMKIT_VMM_TESTING_FAKE_VM_H_
#define VMMKIT_VMM_TESTING_FAKE_VM_H_

#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "vmm/controller.h"

namespace vmmkit::vmm::testing {

// A path for a Unix socket in a per-process directory under /tmp: socket paths must fit sun_path
// (108 bytes), and Bazel's TEST_TMPDIR is longer than that. The directory goes, with whatever is
// left in it, when the test process exits normally.
inline std::string ShortTempPath(const std::string& name) {
  struct Dir {
    Dir() {
      char tmpl[] = "/tmp/vmmkit-api-XXXXXX";
      if (const char* d = ::mkdtemp(tmpl)) path = d;
    }
    ~Dir() {
      std::error_code ignored;
      if (!path.empty()) std::filesystem::remove_all(path, ignored);
    }
    std::string path;
  };
  static const Dir dir;
  return (dir.path.empty() ? std::string("/tmp") : dir.path) + "/" + name;
}

class FakeVm : public VmOperations {
 public:
  absl::Status PauseVcpus() override {
    ++pauses;
    return pause_error;
  }
  absl::Status ResumeVcpus() override {
    ++resumes;
    return absl::OkStatus();
  }
  absl::Status RequestGuestPowerOff() override {
    ++power_button;
    return power_off_error;
  }
  void Stop(const std::string& reason) override { stopped = reason; }
  VmStatus Describe() const override {
    VmStatus s;
    s.config.cpus = 2;
    s.vcpu_tids = {100, 101};
    s.devices = {{"com1", DeviceSummary::Kind::kPlatform, "", "", "16550A UART at 0x3f8",
                  std::nullopt, std::nullopt, std::nullopt, std::nullopt}};
    for (const auto& [id, d] : hotplugged) s.devices.push_back(d);
    s.resources = {.dma_mappings = 1,
                   .dma_mapped_bytes = 2,
                   .msi_routes = 3,
                   .memory_listeners = 4,
                   .open_fds = 5,
                   .threads = 6,
                   .kvm_memory_slots = 7,
                   .heap_in_use_bytes = 8};
    return s;
  }
  // Hotplug: AddDevice succeeds unless add_error is set; BeginRemoveDevice records the request
  // (the test plays the guest with GuestEjects).
  absl::StatusOr<DeviceSummary> AddDevice(const AddDeviceSpec& spec) override {
    if (!add_error.ok()) return add_error;
    const bool disk = spec.kind == "virtio-blk", nic = spec.kind == "virtio-net";
    for (const auto& [id, d] : hotplugged) {
      if (id == spec.id || (!disk && !nic && d.host_bdf == spec.host_bdf) ||
          (disk && d.disk && d.disk->path == spec.disk_path) ||
          (nic && d.net && d.net->tap == spec.tap)) {
        return absl::AlreadyExistsError("id, host, image or tap in use");
      }
    }
    DeviceSummary d{spec.id,
                    disk  ? DeviceSummary::Kind::kVirtioBlk
                    : nic ? DeviceSummary::Kind::kVirtioNet
                          : DeviceSummary::Kind::kVfioPci,
                    "0000:00:0" + std::to_string(spec.slot.value_or(1)) + ".0",
                    spec.host_bdf,
                    spec.kind,
                    std::nullopt,
                    std::nullopt,
                    std::nullopt,
                    std::nullopt};
    if (nic) {
      d.net = NetSummary{
          .tap = spec.tap, .mac = spec.mac, .queue_pairs = spec.queue_pairs, .vhost = spec.vhost};
    }
    if (disk) {
      d.disk = DiskSummary{.path = spec.disk_path,
                           .read_only = spec.read_only,
                           .capacity_bytes = 1 << 20,
                           .queues = spec.queues,
                           .engine = spec.engine};
    }
    hotplugged[spec.id] = d;
    return d;
  }
  absl::StatusOr<DeviceSummary> BeginRemoveDevice(const std::string& id) override {
    if (id == "com1") return absl::FailedPreconditionError("com1 cannot be removed");
    auto it = hotplugged.find(id);
    if (it == hotplugged.end()) return absl::NotFoundError("no device " + id);
    eject_requests.push_back(id);
    eject_count.fetch_add(1);
    return it->second;
  }
  bool CancelRemoveDevice(const std::string& id) override {
    cancelled.push_back(id);
    return released_unreported.count(id) == 0;
  }
  // Touched only on the loop thread.
  int pauses = 0, resumes = 0, power_button = 0;
  absl::Status pause_error, power_off_error, add_error;
  std::string stopped;
  std::map<std::string, DeviceSummary> hotplugged;
  std::vector<std::string> eject_requests, cancelled;
  // Devices the guest has released whose kRemoved has not reached the controller yet.
  std::set<std::string> released_unreported;
  std::atomic<int> eject_count{0};  // For other threads to wait on.
};

class InlineLoop : public LoopExecutor {
 public:
  absl::Status RunOnLoop(std::function<void()> fn) override {
    if (gone) return absl::CancelledError("event loop exited");
    fn();
    return absl::OkStatus();
  }
  void RunOnLoopAfter(absl::Duration delay, std::function<void()> fn) override {
    delayed.push_back({delay, std::move(fn)});
  }
  bool gone = false;
  std::vector<std::pair<absl::Duration, std::function<void()>>> delayed;
};

class ThreadLoop : public LoopExecutor {
 public:
  ThreadLoop() : thread_([this] { Loop(); }) {}
  ~ThreadLoop() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  absl::Status RunOnLoop(std::function<void()> fn) override {
    std::mutex m;
    std::condition_variable cv;
    bool finished = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back([&] {
        fn();
        std::lock_guard<std::mutex> l2(m);
        finished = true;
        cv.notify_all();
      });
    }
    cv_.notify_all();
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return finished; });
    return absl::OkStatus();
  }
  void RunOnLoopAfter(absl::Duration, std::function<void()>) override {}

 private:
  void Loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return done_ || !queue_.empty(); });
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace vmmkit::vmm::testing

#endif  // VMMKIT_VMM_TESTING_FAKE_VM_H_
