#include "tap/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/ioctl.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::tap {
namespace {

constexpr uint32_t kRequiredFlags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;

absl::Status SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoStatus(errno, "tap: make the fd non-blocking");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TapQueue> TapQueue::Open(const std::string& name, bool multi_queue) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("tap: interface name \"", name, "\" (1 to ", IFNAMSIZ - 1, " bytes)"));
  }
  ScopedFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "tap: open /dev/net/tun");
  ifreq req;
  std::memset(&req, 0, sizeof(req));
  std::memcpy(req.ifr_name, name.data(), name.size());
  req.ifr_flags = static_cast<short>(kRequiredFlags | (multi_queue ? IFF_MULTI_QUEUE : 0));
  if (absl::StatusOr<int> r = Ioctl(fd.get(), TUNSETIFF, &req, "TUNSETIFF ", name); !r.ok()) {
    return Prefixed(r.status(), "tap");
  }
  return TapQueue(std::move(fd), std::string(req.ifr_name, strnlen(req.ifr_name, IFNAMSIZ)));
}

absl::StatusOr<TapQueue> TapQueue::Adopt(ScopedFd fd) {
  ifreq req;
  std::memset(&req, 0, sizeof(req));
  if (!Ioctl(fd.get(), TUNGETIFF, &req, "TUNGETIFF").ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("tap: fd ", fd.get(), " is not attached to a tap (TUNGETIFF)"));
  }
  const std::string name(req.ifr_name, strnlen(req.ifr_name, IFNAMSIZ));
  const uint32_t flags = static_cast<uint16_t>(req.ifr_flags);
  if ((flags & kRequiredFlags) != kRequiredFlags) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tap: fd ", fd.get(), " (", name, ") must be a tap opened with IFF_NO_PI | IFF_VNET_HDR"));
  }
  RETURN_IF_ERROR(SetNonBlocking(fd.get()));
  return TapQueue(std::move(fd), name);
}

absl::StatusOr<uint32_t> TapQueue::Flags() const {
  ifreq req;
  std::memset(&req, 0, sizeof(req));
  RETURN_IF_ERROR(Ioctl(fd_.get(), TUNGETIFF, &req, "TUNGETIFF ", name_).status());
  return static_cast<uint16_t>(req.ifr_flags);
}

absl::Status TapQueue::SetOffload(uint32_t tun_flags) const {
  return Ioctl(fd_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(tun_flags), "TUNSETOFFLOAD ",
               name_, " 0x", absl::Hex(tun_flags))
      .status();
}

absl::Status TapQueue::SetVnetHeaderSize(int bytes) const {
  return Ioctl(fd_.get(), TUNSETVNETHDRSZ, &bytes, "TUNSETVNETHDRSZ ", name_, " ", bytes).status();
}

absl::Status TapQueue::SetSendBuffer(int bytes) const {
  return Ioctl(fd_.get(), TUNSETSNDBUF, &bytes, "TUNSETSNDBUF ", name_, " ", bytes).status();
}

absl::Status TapQueue::SetQueueEnabled(bool enabled) const {
  ifreq req;
  std::memset(&req, 0, sizeof(req));
  req.ifr_flags = static_cast<short>(enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE);
  return Ioctl(fd_.get(), TUNSETQUEUE, &req, "TUNSETQUEUE ", name_, enabled ? " attach" : " detach")
      .status();
}

absl::Status Tap::Configure(const TapQueue& q) {
  RETURN_IF_ERROR(q.SetVnetHeaderSize(kVnetHeaderSize));
  RETURN_IF_ERROR(q.SetSendBuffer(INT_MAX));
  return q.SetOffload(0);
}

absl::StatusOr<Tap> Tap::Open(const std::string& name, uint16_t queues) {
  if (queues < 1 || queues > kMaxQueues) {
    return absl::InvalidArgumentError(
        absl::StrCat("tap: ", queues, " queues (1 to ", kMaxQueues, ")"));
  }
  std::vector<TapQueue> opened;
  for (uint16_t i = 0; i < queues; ++i) {
    ASSIGN_OR_RETURN(TapQueue q, TapQueue::Open(name, queues > 1));
    RETURN_IF_ERROR(Configure(q));
    opened.push_back(std::move(q));
  }
  return Tap(std::move(opened));
}

absl::StatusOr<Tap> Tap::Adopt(std::vector<ScopedFd> fds) {
  if (fds.empty() || fds.size() > kMaxQueues) {
    return absl::InvalidArgumentError(
        absl::StrCat("tap: ", fds.size(), " fds (1 to ", kMaxQueues, ")"));
  }
  std::vector<TapQueue> adopted;
  for (ScopedFd& fd : fds) {
    ASSIGN_OR_RETURN(TapQueue q, TapQueue::Adopt(std::move(fd)));
    if (!adopted.empty() && q.name() != adopted.front().name()) {
      return absl::InvalidArgumentError(absl::StrCat("tap: fds of different interfaces (",
                                                     adopted.front().name(), ", ", q.name(), ")"));
    }
    if (fds.size() > 1) {
      ASSIGN_OR_RETURN(uint32_t flags, q.Flags());
      if ((flags & IFF_MULTI_QUEUE) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("tap: ", fds.size(), " fds of ", q.name(), ", not a multi-queue tap"));
      }
    }
    RETURN_IF_ERROR(Configure(q));
    adopted.push_back(std::move(q));
  }
  return Tap(std::move(adopted));
}

absl::StatusOr<TapStatistics> Tap::Statistics() const {
  TapStatistics st;
  const std::pair<const char*, uint64_t*> counters[] = {
      {"rx_packets", &st.rx_packets}, {"rx_bytes", &st.rx_bytes}, {"rx_dropped", &st.rx_dropped},
      {"tx_packets", &st.tx_packets}, {"tx_bytes", &st.tx_bytes}, {"tx_dropped", &st.tx_dropped}};
  for (const auto& [file, value] : counters) {
    const std::string path = absl::StrCat("/sys/class/net/", name(), "/statistics/", file);
    ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, "tap: open ", path);
    char text[32];
    const ssize_t n = ::read(fd.get(), text, sizeof(text) - 1);
    if (n <= 0) return ErrnoStatus(n < 0 ? errno : EIO, "tap: read ", path);
    text[n] = 0;
    if (!absl::SimpleAtoi(absl::StripTrailingAsciiWhitespace(text), value)) {
      return absl::InternalError(absl::StrCat("tap: ", path, " is not a number"));
    }
  }
  return st;
}

}  // namespace vmmkit::tap
