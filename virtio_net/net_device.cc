#include "virtio_net/net_device.h"

#include <limits.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "virtio/device_status.h"
#include "virtio_net/packet.h"
#include "virtio_net/protocol.h"

namespace vmmkit::virtio_net {
namespace {

// Chains (transmit) or packets (receive) one turn serves before the worker interrupts the guest
// and looks at its other queues: a guest flooding one direction cannot starve the other.
constexpr int kBatch = 64;
// A read's buffer: larger than any packet, so that a packet too large (which the tap would
// truncate, reporting its whole length) is seen and dropped.
constexpr size_t kReadBuffer = 69632;
constexpr uint16_t kMaxPairs = 16;

}  // namespace

// A worker's receive side: the packet it read but has not placed (the guest had no room yet),
// and the chains it took for it so far. Bounded: one packet, at most a queue of chains.
struct NetDevice::RxState {
  std::vector<uint8_t> packet = std::vector<uint8_t>(kReadBuffer);
  size_t length = 0;  // 0: none held.
  std::vector<virtio::DescriptorChain> chains;
  std::vector<uint64_t> room;  // chains[i].writable_bytes.
  bool starved = false;        // Waiting for the guest's buffers: the fd is not polled.
  bool fd_failed = false;      // The fd read as an error: not polled until the driver kicks.
};

absl::StatusOr<std::shared_ptr<NetDevice>> NetDevice::Create(
    std::unique_ptr<NetBackend> backend, std::unique_ptr<DmaSpace> dma, NetOptions options,
    std::unique_ptr<DmaSpace> platform_dma) {
  if (backend == nullptr || dma == nullptr) {
    return absl::InvalidArgumentError("virtio-net: no backend or DMA space");
  }
  const uint16_t pairs = backend->queue_pairs();
  if (pairs < 1 || pairs > kMaxPairs) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-net: ", pairs, " queue pairs (1 to ", kMaxPairs, ")"));
  }
  const uint32_t size = options.queue_size;
  if (size < 2 || size > 1024 || (size & (size - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-net: queue size ", size, " (a power of two from 2 to 1024)"));
  }
  if ((options.mac[0] & 1) != 0) {
    return absl::InvalidArgumentError("virtio-net: a multicast MAC address");
  }
  if (options.vhost_memory != nullptr &&
      (!options.rx_limit.unlimited() || !options.tx_limit.unlimited())) {
    return absl::InvalidArgumentError(
        "virtio-net: rate limits need vmm's data path (vhost-net has no limiter)");
  }
  std::vector<EventFd> notifiers;
  for (int i = 0; i < 2 * pairs + 1; ++i) {
    absl::StatusOr<EventFd> e = EventFd::Create();
    if (!e.ok()) return e.status();
    notifiers.push_back(std::move(*e));
  }
  std::shared_ptr<NetDevice> device(new NetDevice(
      std::move(backend), std::move(dma), std::move(platform_dma), options, std::move(notifiers)));
  if (options.vhost_memory != nullptr) {
    RETURN_IF_ERROR(Prefixed(device->OpenVhost(*options.vhost_memory), "virtio-net: vhost-net"));
    if (options.vhost_translate && device->platform_dma_ != nullptr &&
        (device->vhost_features_ & vhost::kFeatureAccessPlatform) != 0) {
      device->iotlb_ =
          std::make_unique<vhost::DeviceIotlb>(options.vhost_translate, *options.vhost_memory);
      for (const vhost::VhostNet& v : device->vhost_) device->iotlb_->Add(&v);
    }
  }
  // Started here, on the creator's thread (see virtio/workers.h); the destructor joins them.
  RETURN_IF_ERROR(device->workers_.Start(
      pairs, "virtio-net", [d = device.get()](size_t i, Work work, int stop_fd) {
        d->Serve(static_cast<uint16_t>(i), std::move(work), *d->active_dma_, stop_fd);
      }));
  return device;
}

NetDevice::NetDevice(std::unique_ptr<NetBackend> backend, std::unique_ptr<DmaSpace> dma,
                     std::unique_ptr<DmaSpace> platform, NetOptions options,
                     std::vector<EventFd> notifiers)
    : backend_(std::move(backend)),
      dma_(std::move(dma)),
      platform_dma_(std::move(platform)),
      options_(options),
      pairs_(backend_->queue_pairs()),
      notifiers_(std::move(notifiers)),
      filter_(options.mac),
      rx_limiter_{TokenBucket(options.rx_limit.bytes_per_second, absl::Now()),
                  TokenBucket(options.rx_limit.packets_per_second, absl::Now())},
      tx_limiter_{TokenBucket(options.tx_limit.bytes_per_second, absl::Now()),
                  TokenBucket(options.tx_limit.packets_per_second, absl::Now())} {}

NetDevice::~NetDevice() {
  Reset();
  if (iotlb_ != nullptr) {
    const vhost::DeviceIotlb::Stats s = iotlb_->stats();
    LogInfo("virtio-net: vhost IOTLB served ", s.misses, " misses with ", s.updates,
            " updates, sent ", s.invalidations, " invalidations, ", s.faults, " faults");
  }
}

absl::Status NetDevice::OpenVhost(const GuestMemory& memory) {
  // The ring features this device offers must be the kernel's too.
  const uint64_t needed = virtio::kFeatureVersion1 | virtio::kFeatureEventIdx |
                          virtio::kFeatureIndirectDesc | kFeatureMrgRxbuf;
  for (uint16_t p = 0; p < pairs_; ++p) {
    ASSIGN_OR_RETURN(vhost::VhostNet v, vhost::VhostNet::Open());
    ASSIGN_OR_RETURN(vhost_features_, vhost::SetUp(v, memory, needed));
    vhost_.push_back(std::move(v));
    for (int i = 0; i < 3; ++i) {
      ASSIGN_OR_RETURN(EventFd e, EventFd::Create());
      (i < 2 ? calls_ : errors_).push_back(std::move(e));
    }
  }
  return absl::OkStatus();
}

uint64_t NetDevice::device_features() const {
  uint64_t f = kFeatureCsum | kFeatureGuestCsum | kFeatureCtrlGuestOffloads | kFeatureMac |
               kFeatureGuestTso4 | kFeatureGuestTso6 | kFeatureGuestEcn | kFeatureHostTso4 |
               kFeatureHostTso6 | kFeatureHostEcn | kFeatureMrgRxbuf | kFeatureStatus |
               kFeatureCtrlVq | kFeatureCtrlRx | kFeatureCtrlMacAddr;
  if (pairs_ > 1) f |= kFeatureMq;
  if (platform_dma_ != nullptr && (!vhost() || iotlb_ != nullptr)) {
    f |= virtio::kFeatureAccessPlatform;
  }
  return f;
}

uint32_t NetDevice::config_size() const { return kConfigSize; }

MacAddress NetDevice::mac() const {
  MutexLock lock(filter_mu_);
  return filter_.mac();
}

void NetDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  uint8_t config[kConfigSize] = {};
  const MacAddress m = mac();
  std::memcpy(config + kConfigMac, m.data(), m.size());
  const uint16_t status = kStatusLinkUp;
  std::memcpy(config + kConfigStatus, &status, sizeof(status));
  std::memcpy(config + kConfigMaxPairs, &pairs_, sizeof(pairs_));
  if (offset > kConfigSize || data.size() > kConfigSize - offset) return;
  std::memcpy(data.data(), config + offset, data.size());
}

void NetDevice::WriteConfig(uint32_t, absl::Span<const uint8_t>) {
  // virtio 1.x: the MAC is set through the control queue (CTRL_MAC_ADDR), nothing here is
  // writable.
}

absl::Status NetDevice::Activate(virtio_pci::Activation activation) {
  MutexLock lock(activation_mu_);
  {
    if (workers_.active()) return absl::FailedPreconditionError("virtio-net: already active");
    if (activation.queues.size() != num_queues()) {
      return absl::InvalidArgumentError(absl::StrCat("virtio-net: ", activation.queues.size(),
                                                     " queues activated, ", num_queues(),
                                                     " offered"));
    }
    // The tap hands over only frames the guest can take, and, until the driver says otherwise
    // (VQ_PAIRS_SET), only to the first pair.
    RETURN_IF_ERROR(
        Prefixed(backend_->SetOffloads(activation.features & kGuestOffloads), "virtio-net"));
    RETURN_IF_ERROR(Prefixed(backend_->EnableQueues(1), "virtio-net"));
    enabled_pairs_.store(1, std::memory_order_relaxed);
    interrupt_ = std::move(activation.interrupt);
    needs_reset_ = std::move(activation.needs_reset);
    features_ = activation.features;
    const bool platform =
        platform_dma_ != nullptr && (activation.features & virtio::kFeatureAccessPlatform) != 0;
    active_dma_ = platform ? platform_dma_.get() : dma_.get();
    std::vector<std::optional<Work>> work(pairs_);
    for (uint16_t p = 0; p < pairs_; ++p) {
      work[p] = Work{.rx = std::move(activation.queues[2 * p]),
                     .tx = std::move(activation.queues[2 * p + 1])};
      if (p == 0) work[p]->ctrl = std::move(activation.queues[2 * pairs_]);
    }
    // Notifications that came before are stale: the workers drain their queues first anyway.
    for (EventFd& n : notifiers_) (void)n.Read();
    if (!workers_.Hand(std::move(work))) {
      return absl::InternalError("virtio-net: the workers took no queues");
    }
  }
  return absl::OkStatus();
}

void NetDevice::QueueNotify(uint16_t index) {
  if (index < notifiers_.size()) (void)notifiers_[index].Write(1);
}

void NetDevice::Reset() {
  {
    MutexLock lock(activation_mu_);
    if (!workers_.active()) return;
    workers_.Stop();
    interrupt_ = nullptr;
    needs_reset_ = nullptr;
    active_dma_ = nullptr;
    features_ = 0;
  }
  MutexLock lock(filter_mu_);
  filter_ = RxFilter(options_.mac);
}

void NetDevice::Serve(uint16_t pair, Work work, const DmaSpace& dma, int stop_fd) {
  if (vhost()) {
    ServeVhost(pair, work, dma, stop_fd);
    return;
  }
  const uint16_t rx_index = static_cast<uint16_t>(2 * pair);
  const uint16_t tx_index = static_cast<uint16_t>(2 * pair + 1);
  const uint16_t ctrl_index = static_cast<uint16_t>(2 * pairs_);
  RxState rx_state;
  bool broken = false, reported = false;
  auto interrupt = [&](std::optional<virtio::SplitQueue>& q, uint16_t index) {
    if (!q || broken) return;
    absl::StatusOr<bool> irq = q->NeedsInterrupt(dma);
    if (!irq.ok()) {
      broken = true;
    } else if (*irq) {
      interrupt_(index);
    }
  };
  while (true) {
    bool more = false;
    absl::Duration tx_wait = absl::InfiniteDuration(), rx_wait = absl::InfiniteDuration();
    if (work.ctrl && !broken) ServeControl(*work.ctrl, dma, broken);
    if (work.tx && !broken) more |= ServeTx(pair, *work.tx, dma, broken, tx_wait);
    const bool fd_enabled = pair < enabled_pairs_.load(std::memory_order_relaxed);
    if (work.rx && fd_enabled && !broken) {
      more |= ServeRx(pair, *work.rx, dma, rx_state, broken, rx_wait);
    }
    interrupt(work.ctrl, ctrl_index);
    interrupt(work.tx, tx_index);
    interrupt(work.rx, rx_index);
    if (broken && !reported) {
      needs_reset_();
      reported = true;
    }
    // The backend's fd only while the guest has room for what it brings (or may have: the
    // worker has not looked yet).
    // Nor while receiving is throttled: the limiter's wait is the poll's timeout.
    const bool poll_fd = work.rx && fd_enabled && !rx_state.starved && !rx_state.fd_failed &&
                         !broken && rx_wait == absl::InfiniteDuration();
    const absl::Duration wait = std::min(tx_wait, rx_wait);
    const int timeout = more && !broken ? 0
                        : broken || wait == absl::InfiniteDuration()
                            ? -1
                            : static_cast<int>(absl::ToInt64Milliseconds(wait) + 1);
    pollfd fds[5] = {{stop_fd, POLLIN, 0},
                     {notifiers_[rx_index].fd(), POLLIN, 0},
                     {notifiers_[tx_index].fd(), POLLIN, 0},
                     {work.ctrl ? notifiers_[ctrl_index].fd() : -1, POLLIN, 0},
                     {poll_fd ? backend_->fd(pair) : -1, POLLIN, 0}};
    const int n = ::poll(fds, 5, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[0].revents & POLLIN)) break;
    if (fds[1].revents & POLLIN) {
      (void)notifiers_[rx_index].Read();
      rx_state.starved = false;
      rx_state.fd_failed = false;
    }
    if (fds[2].revents & POLLIN) (void)notifiers_[tx_index].Read();
    if (fds[3].revents & POLLIN) (void)notifiers_[ctrl_index].Read();
  }
}

absl::Status NetDevice::StartVhost(uint16_t pair, Work& work) {
  const vhost::VhostNet& v = vhost_[pair];
  // The tap carries the virtio-net header (IFF_VNET_HDR): vhost-net must not add its own. With
  // ACCESS_PLATFORM (only offered with an IOTLB service) the kernel's IOTLB translates.
  RETURN_IF_ERROR(v.SetFeatures(features_ & vhost_features_ &
                                ~(vhost::kFeatureNetVirtioNetHdr | vhost::kFeatureLogAll)));
  const bool platform = (features_ & virtio::kFeatureAccessPlatform) != 0;
  if (iotlb_ != nullptr) RETURN_IF_ERROR(iotlb_->Start(v, platform));
  for (uint32_t ring = 0; ring < 2; ++ring) {
    const std::optional<virtio::SplitQueue>& q = ring == 0 ? work.rx : work.tx;
    if (!q) continue;
    const size_t index = 2 * size_t{pair} + ring;
    RETURN_IF_ERROR(vhost::StartVring(
        v, platform ? nullptr : options_.vhost_memory, ring, *q,
        {.kick = notifiers_[index].fd(), .call = calls_[index].fd(), .err = errors_[pair].fd()}));
    // Starting a ring, the kernel writes its used ring's flags: the translation must be there.
    if (platform) {
      RETURN_IF_ERROR(iotlb_->Map(v, q->config().used.raw(), vhost::IotlbMessage::kWrite));
    }
    RETURN_IF_ERROR(v.SetBackend(ring, backend_->fd(pair)));
  }
  return absl::OkStatus();
}

void NetDevice::ServeVhost(uint16_t pair, Work& work, const DmaSpace& dma, int stop_fd) {
  const size_t rx_index = 2 * size_t{pair}, tx_index = rx_index + 1,
               ctrl_index = 2 * size_t{pairs_};
  bool broken = false, reported = false;
  if (absl::Status s = StartVhost(pair, work); !s.ok()) {
    LogWarning("virtio-net: cannot start queue pair ", pair, ": ", s.message());
    broken = true;
  }
  // The kernel's IOTLB misses come in on the device's own fd.
  const bool iotlb = iotlb_ != nullptr && (features_ & virtio::kFeatureAccessPlatform) != 0;
  while (true) {
    if (work.ctrl && !broken) {
      ServeControl(*work.ctrl, dma, broken);
      absl::StatusOr<bool> irq = broken ? false : work.ctrl->NeedsInterrupt(dma);
      if (!irq.ok()) broken = true;
      if (irq.ok() && *irq) interrupt_(static_cast<uint16_t>(ctrl_index));
    }
    if (broken && !reported) {
      needs_reset_();
      reported = true;
    }
    pollfd fds[6] = {{stop_fd, POLLIN, 0},
                     {calls_[rx_index].fd(), POLLIN, 0},
                     {calls_[tx_index].fd(), POLLIN, 0},
                     {errors_[pair].fd(), POLLIN, 0},
                     {work.ctrl ? notifiers_[ctrl_index].fd() : -1, POLLIN, 0},
                     {iotlb && !broken ? vhost_[pair].fd() : -1, POLLIN, 0}};
    const int n = ::poll(fds, 6, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[0].revents & POLLIN)) break;
    // The kernel decided the guest wants these (it reads used_event itself).
    if ((fds[1].revents & POLLIN) && calls_[rx_index].Read().ok()) {
      interrupt_(static_cast<uint16_t>(rx_index));
    }
    if ((fds[2].revents & POLLIN) && calls_[tx_index].Read().ok()) {
      interrupt_(static_cast<uint16_t>(tx_index));
    }
    // A ring the kernel could not go on with (a descriptor outside guest RAM, say).
    if ((fds[3].revents & POLLIN) && errors_[pair].Read().ok()) broken = true;
    if (fds[4].revents & POLLIN) (void)notifiers_[ctrl_index].Read();
    if (fds[5].revents & POLLIN) {
      if (absl::Status s = iotlb_->Serve(vhost_[pair]); !s.ok()) {
        LogWarning("virtio-net: queue pair ", pair, "'s IOTLB: ", s.message());
        broken = true;  // The ring that missed waits for an answer that will not come.
      }
    }
  }
  // Nothing touches the guest's rings once Reset returns.
  for (uint32_t ring = 0; ring < 2; ++ring) (void)vhost_[pair].SetBackend(ring, -1);
  if (iotlb_ != nullptr) iotlb_->Stop(vhost_[pair]);
  for (size_t q : {rx_index, tx_index}) (void)calls_[q].Read();
}

bool NetDevice::Admit(bool rx, absl::Duration& wait) {
  if (rx ? options_.rx_limit.unlimited() : options_.tx_limit.unlimited()) return true;
  MutexLock lock(limit_mu_);
  Limiter& l = rx ? rx_limiter_ : tx_limiter_;
  const absl::Time now = absl::Now();
  if (l.bytes.Ready(now) && l.packets.Ready(now)) return true;
  wait = std::max(l.bytes.UntilReady(now), l.packets.UntilReady(now));
  return false;
}

void NetDevice::Charge(bool rx, uint64_t bytes) {
  if (rx ? options_.rx_limit.unlimited() : options_.tx_limit.unlimited()) return;
  MutexLock lock(limit_mu_);
  Limiter& l = rx ? rx_limiter_ : tx_limiter_;
  l.bytes.Take(bytes);
  l.packets.Take(1);
}

bool NetDevice::ServeTx(uint16_t pair, virtio::SplitQueue& tx, const DmaSpace& dma, bool& broken,
                        absl::Duration& wait) {
  std::vector<iovec> iov;
  std::vector<uint8_t> bounce;
  for (int served = 0; served < kBatch; ++served) {
    // Throttled: the chains wait in the ring (the guest sees a slow link), the worker wakes when
    // the limit allows more.
    if (!Admit(/*rx=*/false, wait)) return false;
    absl::StatusOr<std::optional<virtio::DescriptorChain>> chain = tx.Pop(dma);
    if (!chain.ok()) {
      broken = true;
      return false;
    }
    if (!chain->has_value()) {
      absl::StatusOr<bool> more = tx.EnableNotification(dma);
      if (!more.ok()) broken = true;
      if (!more.ok() || !*more) return false;
      continue;
    }
    absl::StatusOr<TxFrame> frame = ParseTx(**chain);
    if (frame.ok()) {
      // Straight from guest RAM where the space can name it (the kernel copies the header before
      // it looks at it, so a guest changing it meanwhile only changes its own frame).
      ssize_t sent;
      if (dma.HostIovecs(frame->ranges, iov) && iov.size() <= IOV_MAX) {
        sent = ::writev(backend_->fd(pair), iov.data(), static_cast<int>(iov.size()));
      } else {
        bounce.resize(frame->bytes);
        size_t at = 0;
        bool read = true;
        for (const DmaRange& r : frame->ranges) {
          read = read && dma.Read(r.iova, absl::MakeSpan(bounce.data() + at, r.len)).ok();
          at += r.len;
        }
        sent = read ? ::write(backend_->fd(pair), bounce.data(), bounce.size()) : -1;
      }
      if (sent == static_cast<ssize_t>(frame->bytes)) {
        Charge(/*rx=*/false, frame->bytes - kHeaderSize);
        tx_packets_.fetch_add(1, std::memory_order_relaxed);
        tx_bytes_.fetch_add(frame->bytes - kHeaderSize, std::memory_order_relaxed);
      } else {
        tx_dropped_.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      refused_.fetch_add(1, std::memory_order_relaxed);
    }
    if (!tx.AddUsed(dma, (*chain)->head, 0).ok()) {
      broken = true;
      return false;
    }
  }
  return true;
}

void NetDevice::ServeControl(virtio::SplitQueue& ctrl, const DmaSpace& dma, bool& broken) {
  while (true) {
    absl::StatusOr<std::optional<virtio::DescriptorChain>> chain = ctrl.Pop(dma);
    if (!chain.ok()) {
      broken = true;
      return;
    }
    if (!chain->has_value()) {
      absl::StatusOr<bool> more = ctrl.EnableNotification(dma);
      if (!more.ok()) broken = true;
      if (!more.ok() || !*more) return;
      continue;
    }
    uint32_t written = 0;
    absl::StatusOr<ControlCommand> command = ParseControl(**chain, dma);
    if (command.ok()) {
      ControlOutcome out;
      {
        MutexLock lock(filter_mu_);
        out = ApplyControl(*command, features_, pairs_, filter_);
      }
      if (out.offloads && !backend_->SetOffloads(*out.offloads).ok()) out.ack = kCtrlErr;
      if (out.pairs) {
        if (backend_->EnableQueues(*out.pairs).ok()) {
          enabled_pairs_.store(*out.pairs, std::memory_order_relaxed);
          // Workers of newly enabled pairs look at their fd.
          for (uint16_t p = 1; p < pairs_; ++p) (void)notifiers_[2 * p].Write(1);
        } else {
          out.ack = kCtrlErr;
        }
      }
      if (out.ack != kCtrlOk) refused_.fetch_add(1, std::memory_order_relaxed);
      if (dma.Write(command->ack, absl::MakeConstSpan(&out.ack, 1)).ok()) written = 1;
    } else {
      refused_.fetch_add(1, std::memory_order_relaxed);
    }
    if (!ctrl.AddUsed(dma, (*chain)->head, written).ok()) {
      broken = true;
      return;
    }
  }
}

bool NetDevice::ServeRx(uint16_t pair, virtio::SplitQueue& rx, const DmaSpace& dma, RxState& state,
                        bool& broken, absl::Duration& wait) {
  const bool mergeable = (features_ & kFeatureMrgRxbuf) != 0;
  for (int turn = 0; turn < kBatch; ++turn) {
    if (state.length == 0) {
      // Throttled: frames wait in the tap (which drops what overflows its queue).
      if (!Admit(/*rx=*/true, wait)) return false;
      const ssize_t n = ::read(backend_->fd(pair), state.packet.data(), state.packet.size());
      if (n < 0) {
        // EAGAIN: nothing more now (poll says when). Anything else (the tap deleted under the
        // VM) would poll as an error for ever: the fd is left alone until the driver kicks.
        if (errno != EAGAIN && errno != EINTR) state.fd_failed = true;
        return false;
      }
      if (static_cast<size_t>(n) < kHeaderSize + kEthHeaderSize ||
          static_cast<size_t>(n) > kMaxPacket) {
        rx_dropped_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      bool wanted;
      {
        MutexLock lock(filter_mu_);
        wanted = filter_.Accepts(absl::MakeConstSpan(state.packet.data() + kHeaderSize,
                                                     static_cast<size_t>(n) - kHeaderSize));
      }
      if (!wanted) {
        rx_filtered_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      state.length = static_cast<size_t>(n);
    }
    size_t needed = ChainsNeeded(state.length, state.room, mergeable);
    while (needed == 0) {
      // Without mergeable buffers a chain too small for the packet keeps waiting for a smaller
      // packet; the packet is dropped. With them, a packet larger than a whole queue's buffers
      // is dropped too.
      if ((!mergeable && !state.chains.empty()) || state.chains.size() >= rx.size()) {
        rx_dropped_.fetch_add(1, std::memory_order_relaxed);
        state.length = 0;
        break;
      }
      absl::StatusOr<std::optional<virtio::DescriptorChain>> chain = rx.Pop(dma);
      if (!chain.ok()) {
        broken = true;
        return false;
      }
      if (!chain->has_value()) {
        absl::StatusOr<bool> more = rx.EnableNotification(dma);
        if (!more.ok()) {
          broken = true;
          return false;
        }
        if (*more) continue;
        state.starved = true;
        return false;
      }
      if (!(*chain)->readable.empty() || (*chain)->writable_bytes < kHeaderSize) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        if (!rx.AddUsed(dma, (*chain)->head, 0).ok()) {
          broken = true;
          return false;
        }
        continue;
      }
      state.room.push_back((*chain)->writable_bytes);
      state.chains.push_back(**std::move(chain));
      needed = ChainsNeeded(state.length, state.room, mergeable);
    }
    if (state.length == 0) continue;
    absl::StatusOr<std::vector<uint32_t>> written =
        WriteRx(absl::MakeSpan(state.packet.data(), state.length),
                absl::MakeConstSpan(state.chains.data(), needed), dma);
    if (written.ok()) {
      Charge(/*rx=*/true, state.length - kHeaderSize);
      rx_packets_.fetch_add(1, std::memory_order_relaxed);
      rx_bytes_.fetch_add(state.length - kHeaderSize, std::memory_order_relaxed);
    } else {
      // Buffers the device cannot write (behind the vIOMMU, unmapped): returned empty.
      rx_dropped_.fetch_add(1, std::memory_order_relaxed);
      written = std::vector<uint32_t>(needed, 0);
    }
    for (size_t i = 0; i < needed; ++i) {
      if (!rx.AddUsed(dma, state.chains[i].head, (*written)[i]).ok()) {
        broken = true;
        return false;
      }
    }
    state.chains.erase(state.chains.begin(), state.chains.begin() + static_cast<ptrdiff_t>(needed));
    state.room.erase(state.room.begin(), state.room.begin() + static_cast<ptrdiff_t>(needed));
    state.length = 0;
  }
  return true;
}

NetDevice::Stats NetDevice::stats() const {
  const auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  if (vhost()) {
    // The kernel moved the frames: the tap's counters, seen from the guest's side.
    absl::StatusOr<tap::TapStatistics> t = backend_->Statistics();
    if (!t.ok()) return {.refused = get(refused_)};
    return {.rx_packets = t->tx_packets,
            .rx_bytes = t->tx_bytes,
            .tx_packets = t->rx_packets,
            .tx_bytes = t->rx_bytes,
            .rx_dropped = t->tx_dropped,
            .tx_dropped = t->rx_dropped,
            .refused = get(refused_)};
  }
  return {.rx_packets = get(rx_packets_),
          .rx_bytes = get(rx_bytes_),
          .tx_packets = get(tx_packets_),
          .tx_bytes = get(tx_bytes_),
          .rx_dropped = get(rx_dropped_),
          .rx_filtered = get(rx_filtered_),
          .tx_dropped = get(tx_dropped_),
          .refused = get(refused_)};
}

}  // namespace vmmkit::virtio_net
