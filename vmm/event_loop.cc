#include "vmm/event_loop.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "base/log.h"
#include "base/status.h"

namespace vmmkit::vmm {

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  ScopedFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return ErrnoStatus(errno, "epoll_create1");
  absl::StatusOr<EventFd> wakeup = EventFd::Create();
  if (!wakeup.ok()) return wakeup.status();
  std::unique_ptr<EventLoop> loop(new EventLoop(std::move(epoll), *std::move(wakeup)));
  epoll_event ev{.events = EPOLLIN, .data = {.fd = loop->wakeup_.fd()}};
  if (::epoll_ctl(loop->epoll_.get(), EPOLL_CTL_ADD, loop->wakeup_.fd(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl ADD (the loop's wakeup eventfd)");
  }
  return loop;
}

EventLoop::~EventLoop() { Close(); }

absl::Status EventLoop::Watch(int fd, std::function<void()> on_ready) {
  epoll_event ev{.events = EPOLLIN, .data = {.fd = fd}};
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl ADD fd=", fd);
  }
  handlers_[fd] = std::move(on_ready);
  return absl::OkStatus();
}

void EventLoop::Unwatch(int fd) {
  (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::Run() {
  thread_.store(std::this_thread::get_id());
  for (;;) {
    std::deque<std::function<void()>> work;
    int timeout_ms;
    {
      MutexLock lock(mu_);
      if (quit_) break;
      timeout_ms = TakeWork(work);
      in_flight_ = !work.empty();
    }
    if (!work.empty()) {
      for (auto& fn : work) fn();
      work.clear();
      MutexLock lock(mu_);
      in_flight_ = false;
      done_.SignalAll();  // For waiters whose work was taken just before a Close.
      continue;           // The work may have queued more, or asked to quit.
    }
    epoll_event events[8];
    const int n = ::epoll_wait(epoll_.get(), events, 8, timeout_ms);
    if (n < 0 && errno != EINTR) {
      LogError("event loop: epoll_wait: ", std::strerror(errno));
      break;
    }
    for (int i = 0; i < std::max(n, 0); ++i) {
      const int fd = events[i].data.fd;
      if (fd == wakeup_.fd()) {
        (void)wakeup_.Read();
        continue;
      }
      // Copied: the handler may unwatch its own fd.
      auto it = handlers_.find(fd);
      if (it == handlers_.end()) continue;  // Unwatched by an earlier handler of this turn.
      std::function<void()> handler = it->second;
      handler();
    }
  }
  thread_.store(std::thread::id());
}

int EventLoop::TakeWork(std::deque<std::function<void()>>& work) {
  work.swap(work_);
  const absl::Time now = absl::Now();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    work.push_back(std::move(timers_.begin()->second));
    timers_.erase(timers_.begin());
  }
  if (timers_.empty()) return -1;
  // Rounded up, so the loop does not wake a millisecond early and spin.
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(timers_.begin()->first - now) + 1, 60000));
}

void EventLoop::Quit() {
  {
    MutexLock lock(mu_);
    quit_ = true;
  }
  (void)wakeup_.Write(1);
}

void EventLoop::Close() {
  std::deque<std::function<void()>> dropped;              // Destroyed outside the lock:
  std::multimap<absl::Time, std::function<void()>> gone;  // they may own anything.
  {
    MutexLock lock(mu_);
    open_ = false;
    quit_ = true;
    dropped.swap(work_);
    gone.swap(timers_);
    done_.SignalAll();
  }
  (void)wakeup_.Write(1);
}

bool EventLoop::Post(std::function<void()> fn) {
  {
    MutexLock lock(mu_);
    if (!open_) return false;
    work_.push_back(std::move(fn));
  }
  (void)wakeup_.Write(1);
  return true;
}

absl::Status EventLoop::RunOnLoop(std::function<void()> fn) {
  if (OnLoopThread()) {
    fn();
    return absl::OkStatus();
  }
  auto ran = std::make_shared<bool>(false);  // Guarded by mu_.
  {
    MutexLock lock(mu_);
    if (!open_) return absl::UnavailableError("the event loop has stopped");
    work_.push_back([this, fn = std::move(fn), ran] {
      fn();
      MutexLock l(mu_);
      *ran = true;
      done_.SignalAll();
    });
  }
  (void)wakeup_.Write(1);
  MutexLock lock(mu_);
  // Once taken, work runs even if the loop closes meanwhile: wait for it, since `fn` may refer to
  // the caller's stack. Work that was never taken was dropped by Close.
  done_.Wait(mu_,
             [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return *ran || (!open_ && !in_flight_); });
  if (!*ran) return absl::UnavailableError("the event loop stopped before running the request");
  return absl::OkStatus();
}

void EventLoop::RunOnLoopAfter(absl::Duration delay, std::function<void()> fn) {
  {
    MutexLock lock(mu_);
    if (!open_) return;
    timers_.emplace(absl::Now() + delay, std::move(fn));
  }
  (void)wakeup_.Write(1);
}

}  // namespace vmmkit::vmm
