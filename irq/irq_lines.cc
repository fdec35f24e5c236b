#include "irq/irq_lines.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "base/thread_start.h"

namespace vmmkit::irq {

absl::Status KvmIrqLines::Assign(const EventFd& trigger, uint32_t gsi) {
  return vm_.AssignIrqfd(trigger, gsi);
}

absl::Status KvmIrqLines::AssignWithResample(const EventFd& trigger, const EventFd& resample,
                                             uint32_t gsi) {
  return vm_.AssignIrqfdWithResample(trigger, resample, gsi);
}

absl::Status KvmIrqLines::Deassign(const EventFd& trigger, uint32_t gsi) {
  return vm_.DeassignIrqfd(trigger, gsi);
}

absl::StatusOr<std::unique_ptr<IoapicIrqLines>> IoapicIrqLines::Create(Ioapic& ioapic) {
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll < 0) return ErrnoStatus(errno, "epoll_create1 for the IOAPIC's lines");
  ScopedFd epoll_fd(epoll);
  ASSIGN_OR_RETURN(EventFd stop, EventFd::Create());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // Token 0: stop.
  if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, stop.fd(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl ADD for the IOAPIC's stop eventfd");
  }
  std::unique_ptr<IoapicIrqLines> lines(
      new IoapicIrqLines(ioapic, std::move(epoll_fd), std::move(stop)));
  for (uint32_t pin = 0; pin < Ioapic::kPins; ++pin) {
    ioapic.SetEoiHandler(pin, [l = lines.get(), pin] { return l->Resample(pin); });
  }
  lines->thread_ = std::thread([l = lines.get()] {
    pthread_setname_np(pthread_self(), "ioapic-lines");
    ThreadStarted("ioapic-lines");
    l->Loop();
  });
  return lines;
}

IoapicIrqLines::IoapicIrqLines(Ioapic& ioapic, ScopedFd epoll, EventFd stop)
    : ioapic_(ioapic), epoll_(std::move(epoll)), stop_(std::move(stop)) {}

IoapicIrqLines::~IoapicIrqLines() {
  (void)stop_.Write(1);
  if (thread_.joinable()) thread_.join();
  for (uint32_t pin = 0; pin < Ioapic::kPins; ++pin) ioapic_.SetEoiHandler(pin, nullptr);
}

absl::Status IoapicIrqLines::Assign(const EventFd& trigger, uint32_t gsi) {
  return Add(trigger, nullptr, gsi);
}

absl::Status IoapicIrqLines::AssignWithResample(const EventFd& trigger, const EventFd& resample,
                                                uint32_t gsi) {
  return Add(trigger, &resample, gsi);
}

absl::Status IoapicIrqLines::Add(const EventFd& trigger, const EventFd* resample, uint32_t gsi) {
  const auto what = [&] { return absl::StrCat("IOAPIC line for GSI ", gsi); };
  if (gsi >= Ioapic::kPins) {
    return absl::InvalidArgumentError(
        absl::StrCat(what(), ": the IOAPIC has ", Ioapic::kPins, " pins"));
  }
  MutexLock lock(mu_);
  for (const Line& l : lines_) {
    // KVM refuses an eventfd bound twice the same way (EBUSY).
    if (l.trigger_fd == trigger.fd()) {
      return absl::FailedPreconditionError(absl::StrCat(what(), ": the eventfd is in use"));
    }
  }
  // Our own descriptors for the eventfds: the line never depends on the caller's objects staying
  // where they are (an EventFd moves), only on Deassign being called.
  const int t = ::fcntl(trigger.fd(), F_DUPFD_CLOEXEC, 0);
  if (t < 0) return ErrnoStatus(errno, what(), ": dup of the trigger eventfd");
  Line line{.token = next_token_++, .trigger_fd = trigger.fd(), .trigger = ScopedFd(t), .gsi = gsi};
  if (resample != nullptr) {
    const int r = ::fcntl(resample->fd(), F_DUPFD_CLOEXEC, 0);
    if (r < 0) return ErrnoStatus(errno, what(), ": dup of the resample eventfd");
    line.resample = ScopedFd(r);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = line.token;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, line.trigger.get(), &ev) != 0) {
    return ErrnoStatus(errno, what(), ": epoll_ctl ADD");
  }
  lines_.push_back(std::move(line));
  return absl::OkStatus();
}

absl::Status IoapicIrqLines::Deassign(const EventFd& trigger, uint32_t gsi) {
  MutexLock lock(mu_);
  auto it = std::find_if(lines_.begin(), lines_.end(), [&](const Line& l) {
    return l.trigger_fd == trigger.fd() && l.gsi == gsi;
  });
  if (it == lines_.end()) return absl::OkStatus();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->trigger.get(), nullptr) != 0) {
    LogWarning(ErrnoStatus(errno, "IOAPIC line for GSI ", gsi, ": epoll_ctl DEL").message());
  }
  lines_.erase(it);
  return absl::OkStatus();
}

size_t IoapicIrqLines::size() const {
  MutexLock lock(mu_);
  return lines_.size();
}

void IoapicIrqLines::Loop() {
  epoll_event events[16];
  for (;;) {
    const int n = ::epoll_wait(epoll_.get(), events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      LogError(ErrnoStatus(errno, "IOAPIC lines: epoll_wait").message());
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == 0) return;  // Stop.
      uint32_t gsi = 0;
      bool level = false;
      {
        // Under the lock: a line Deassign removed is not raised after it returned.
        MutexLock lock(mu_);
        auto it = std::find_if(lines_.begin(), lines_.end(),
                               [&](const Line& l) { return l.token == events[i].data.u64; });
        if (it == lines_.end()) continue;
        uint64_t count;
        if (::read(it->trigger.get(), &count, sizeof(count)) != sizeof(count)) continue;  // EAGAIN.
        gsi = it->gsi;
        level = it->resample.get() >= 0;
      }
      ioapic_.SetLevel(gsi, true);
      if (!level) ioapic_.SetLevel(gsi, false);
    }
  }
}

bool IoapicIrqLines::Resample(uint32_t gsi) {
  MutexLock lock(mu_);
  bool any = false;
  for (const Line& l : lines_) {
    if (l.gsi != gsi || l.resample.get() < 0) continue;
    any = true;
    const uint64_t one = 1;
    (void)!::write(l.resample.get(), &one, sizeof(one));  // A full counter still wakes VFIO.
  }
  return !any;
}

}  // namespace vmmkit::irq
