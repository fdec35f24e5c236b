// File: virtio/workers.h
// -----------------------------------------------------------------------------
// QueueWorkers<Work> runs a virtio device's worker threads across activations, the part every
// device with threads of its own shares: the threads are started once, when the device is made
// (on the creating thread: a thread inherits its creator's confinement, so they never come from
// the vCPU whose write activated the device); each idles until Hand gives it a Work at DRIVER_OK,
// serves it until Stop, and idles again. Stop returns only once every worker has returned from
// serving, so nothing touches the guest's rings after a device's Reset.
//
//   ASSIGN_OR_RETURN(..., workers_.Start(2, "virtio-net",
//                     [this](size_t i, Work w, int stop_fd) { Serve(i, std::move(w), stop_fd); }));
//   workers_.Hand({Work{...}, Work{...}});   // DRIVER_OK
//   workers_.Stop();                         // reset: `serve` sees stop_fd readable and returns
//
// Whatever the device sets before Hand (its interrupt callback, the DMA space in use) its workers
// see: Hand and a worker's taking of its Work are ordered by the same lock.
//
// Thread-safety: Hand, Stop and active() from any thread (not concurrently with Start or the
// destructor); `serve` runs on the workers.

#ifndef VMMKIT_VIRTIO_WORKERS_H_
#define VMMKIT_VIRTIO_WORKERS_H_

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/thread_start.h"

namespace vmmkit::virtio {

template <typename Work>
class QueueWorkers {
 public:
  // Serves `work` until `stop_fd` (an eventfd) is readable.
  using Serve = std::function<void(size_t index, Work work, int stop_fd)>;

  QueueWorkers() = default;
  QueueWorkers(const QueueWorkers&) = delete;
  QueueWorkers& operator=(const QueueWorkers&) = delete;
  // Stops and joins the workers.
  ~QueueWorkers() {
    Stop();
    {
      MutexLock lock(mu_);
      shutdown_ = true;
    }
    cv_.SignalAll();
    for (std::thread& t : threads_) t.join();
  }

  // Starts `count` threads, each announcing itself as ThreadStarted(kind) first. Once only.
  absl::Status Start(size_t count, absl::string_view kind, Serve serve) {
    absl::StatusOr<EventFd> stop = EventFd::Create();
    if (!stop.ok()) return stop.status();
    stop_.emplace(*std::move(stop));
    serve_ = std::move(serve);
    {
      MutexLock lock(mu_);
      pending_.resize(count);
    }
    for (size_t i = 0; i < count; ++i) {
      threads_.emplace_back([this, i, name = std::string(kind)] { Run(i, name); });
    }
    return absl::OkStatus();
  }

  // Hands worker i `work[i]` (nullopt: it stays idle). False, handing nothing, if the workers are
  // serving already or `work` does not have one entry per worker.
  bool Hand(std::vector<std::optional<Work>> work) {
    {
      MutexLock lock(mu_);
      if (active_ || work.size() != pending_.size()) return false;
      // Notifications meant for the last activation are stale: the workers drain first anyway.
      for (size_t i = 0; i < work.size(); ++i) {
        if (!work[i]) continue;
        pending_[i] = std::move(work[i]);
        ++serving_;
      }
      active_ = true;
    }
    cv_.SignalAll();
    return true;
  }

  // Makes every serving worker return and waits for it. Nothing if not active.
  void Stop() {
    MutexLock lock(mu_);
    if (!active_) return;
    (void)stop_->Write(1);  // Stays readable until every serving worker has seen it.
    cv_.Wait(mu_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return serving_ == 0; });
    (void)stop_->Read();
    // Work handed but never taken (its worker had not woken yet) is dropped with the activation.
    for (std::optional<Work>& p : pending_) p.reset();
    active_ = false;
  }

  bool active() const {
    MutexLock lock(mu_);
    return active_;
  }

 private:
  void Run(size_t index, const std::string& kind) {
    ThreadStarted(kind);
    while (true) {
      std::optional<Work> work;
      {
        MutexLock lock(mu_);
        cv_.Wait(mu_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return shutdown_ || pending_[index].has_value();
        });
        if (shutdown_) return;
        work = std::move(pending_[index]);
        pending_[index].reset();
      }
      serve_(index, *std::move(work), stop_->fd());
      {
        MutexLock lock(mu_);
        --serving_;
      }
      cv_.SignalAll();
    }
  }

  std::optional<EventFd> stop_;  // Set by Start.
  Serve serve_;                  // Likewise.
  std::vector<std::thread> threads_;
  mutable Mutex mu_;
  CondVar cv_;
  bool active_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::optional<Work>> pending_ ABSL_GUARDED_BY(mu_);
  int serving_ ABSL_GUARDED_BY(mu_) = 0;  // Work handed since Hand, not yet returned.
};

}  // namespace vmmkit::virtio

#endif  // VMMKIT_VIRTIO_WORKERS_H_
