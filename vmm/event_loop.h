// File: vmm/event_loop.h
// -----------------------------------------------------------------------------
// EventLoop is the VMM's one control thread: an epoll loop that runs handlers for readable fds,
// work queued from other threads (vCPUs, gRPC), and timers. Everything that changes the VM's
// configuration runs here, one piece at a time, so such changes never race each other.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<EventLoop> loop, EventLoop::Create());
//   RETURN_IF_ERROR(loop->Watch(signal_fd, [&] { ...; loop->Quit(); }));
//   loop->Post([&] { ... });           // from any thread, without waiting
//   RETURN_IF_ERROR(loop->RunOnLoop(f));  // from any thread, waiting for f to have run
//   loop->Run();                       // on the loop's thread, until Quit()
//   loop->Close();                     // queued work dropped; waiters get UNAVAILABLE
//
// Thread-safety: Post, RunOnLoop, RunOnLoopAfter, Quit and Close may be called from any thread.
// Watch and Unwatch run on the loop's thread (or before Run). Handlers, posted work and timers
// run on the loop's thread, outside the loop's lock, so they may post more work.

#ifndef VMMKIT_VMM_EVENT_LOOP_H_
#define VMMKIT_VMM_EVENT_LOOP_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "vmm/controller.h"

namespace vmmkit::vmm {

class EventLoop : public LoopExecutor {
 public:
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();
  ~EventLoop() override;

  // Calls `on_ready` on the loop whenever `fd` is readable (level-triggered). The fd stays owned
  // by the caller and must outlive the watch.
  absl::Status Watch(int fd, std::function<void()> on_ready);
  void Unwatch(int fd);

  // Runs handlers, work and timers on the calling thread until Quit(). Returns at once if Quit or
  // Close came first.
  void Run();
  // Makes Run return once the handler or work item running now (if any) is done.
  void Quit();
  // No more work is accepted; queued work and timers are dropped, and RunOnLoop callers waiting
  // for them get UNAVAILABLE. Implies Quit.
  void Close();

  // Queues `fn` without waiting. False once the loop is closed (`fn` is then dropped).
  bool Post(std::function<void()> fn);
  // LoopExecutor. RunOnLoop on the loop's own thread runs `fn` at once.
  absl::Status RunOnLoop(std::function<void()> fn) override;
  void RunOnLoopAfter(absl::Duration delay, std::function<void()> fn) override;

  bool OnLoopThread() const { return std::this_thread::get_id() == thread_.load(); }

 private:
  EventLoop(ScopedFd epoll, EventFd wakeup)
      : epoll_(std::move(epoll)), wakeup_(std::move(wakeup)) {}
  // Takes due work and timers out of the queue; returns the epoll timeout for the next timer.
  int TakeWork(std::deque<std::function<void()>>& work) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ScopedFd epoll_;
  const EventFd wakeup_;                           // Written when work arrives or on Quit.
  std::map<int, std::function<void()>> handlers_;  // Loop thread only.
  std::atomic<std::thread::id> thread_;            // Set while Run() runs.

  Mutex mu_;
  CondVar done_;  // RunOnLoop waiters: their work ran, or the loop closed.
  std::deque<std::function<void()>> work_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  bool quit_ ABSL_GUARDED_BY(mu_) = false;
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;  // Run is running work it took from work_.
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_EVENT_LOOP_H_
