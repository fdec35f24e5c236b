#include "virtio_net/backend.h"

#include <linux/if_tun.h>

#include "virtio_net/protocol.h"

namespace vmmkit::virtio_net {

TapBackend::TapBackend(tap::Tap tap) : tap_(std::move(tap)) {
  absl::StatusOr<tap::TapStatistics> now = tap_.Statistics();
  if (now.ok()) baseline_ = *now;
}

absl::StatusOr<tap::TapStatistics> TapBackend::Statistics() const {
  absl::StatusOr<tap::TapStatistics> now = tap_.Statistics();
  if (!now.ok()) return now.status();
  return tap::TapStatistics{.rx_packets = now->rx_packets - baseline_.rx_packets,
                            .rx_bytes = now->rx_bytes - baseline_.rx_bytes,
                            .rx_dropped = now->rx_dropped - baseline_.rx_dropped,
                            .tx_packets = now->tx_packets - baseline_.tx_packets,
                            .tx_bytes = now->tx_bytes - baseline_.tx_bytes,
                            .tx_dropped = now->tx_dropped - baseline_.tx_dropped};
}

absl::Status TapBackend::SetOffloads(uint64_t guest_offloads) {
  uint32_t flags = 0;
  if ((guest_offloads & kFeatureGuestCsum) != 0) {
    flags |= TUN_F_CSUM;
    if ((guest_offloads & kFeatureGuestTso4) != 0) flags |= TUN_F_TSO4;
    if ((guest_offloads & kFeatureGuestTso6) != 0) flags |= TUN_F_TSO6;
    if ((guest_offloads & kFeatureGuestEcn) != 0) flags |= TUN_F_TSO_ECN;
    if ((guest_offloads & kFeatureGuestUfo) != 0) flags |= TUN_F_UFO;
  }
  return tap_.queue(0).SetOffload(flags);
}

absl::Status TapBackend::EnableQueues(uint16_t pairs) {
  if (tap_.num_queues() == 1) return absl::OkStatus();
  for (uint16_t i = 0; i < tap_.num_queues(); ++i) {
    if (absl::Status s = tap_.queue(i).SetQueueEnabled(i < pairs); !s.ok()) {
      // Detaching an already-detached queue, or attaching an attached one, is EINVAL: not an
      // error here, where only the end state matters.
      if (!absl::IsInvalidArgument(s)) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace vmmkit::virtio_net
