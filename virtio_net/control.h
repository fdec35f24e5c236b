// File: virtio_net/control.h
// -----------------------------------------------------------------------------
// virtio-net's control queue and the receive filter it programs. ParseControl turns a chain into
// a command (class, command, its data, where the ack goes) with every length checked before a
// byte is kept; RxFilter is what Linux's driver sets with it (promiscuous and all-multicast modes,
// the unicast and multicast address tables, the MAC address) and decides which received frames
// the guest gets; ApplyControl carries a command out against the filter and the negotiated
// features and says what the device must do beyond the filter (new receive offloads, a number of
// queue pairs).
//
//   ASSIGN_OR_RETURN(ControlCommand c, ParseControl(chain, dma));
//   ControlOutcome out = ApplyControl(c, features, max_pairs, filter);
//   if (out.offloads) tap.SetOffload(...);
//   dma.Write(c.ack, {out.ack});
//
// Everything in a command is the guest's: a class or command the device did not offer, data of
// the wrong length, or a table whose counts disagree with its size is answered kCtrlErr and
// changes nothing.
//
// Thread-safety: RxFilter is a value; the device guards the one it shares between its queues.

#ifndef VMMKIT_VIRTIO_NET_CONTROL_H_
#define VMMKIT_VIRTIO_NET_CONTROL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/address.h"
#include "memory/dma_space.h"
#include "virtio/queue.h"

namespace vmmkit::virtio_net {

using MacAddress = std::array<uint8_t, 6>;

struct ControlCommand {
  uint8_t cls = 0;
  uint8_t cmd = 0;
  std::vector<uint8_t> data;  // What follows class and command.
  Iova ack;                   // The first writable byte.
};

// A command's data is at most this long: a MAC table of 64 unicast and 64 multicast addresses
// (what Linux sends, at most, before it asks for all-multicast instead) fits many times over.
inline constexpr uint32_t kMaxControlData = 4096;

// INVALID_ARGUMENT for a chain with fewer than 2 readable bytes, more than 2 + kMaxControlData,
// or no writable byte; the DMA space's error for buffers it cannot read.
absl::StatusOr<ControlCommand> ParseControl(const virtio::DescriptorChain& chain,
                                            const DmaSpace& dma);

struct ControlOutcome {
  uint8_t ack = 1;  // kCtrlOk or kCtrlErr.
  // The receive offloads the driver asked for (GUEST_* feature bits), to pass to the backend.
  std::optional<uint64_t> offloads;
  // The queue pairs the driver will use from now on.
  std::optional<uint16_t> pairs;
};

class RxFilter;
ControlOutcome ApplyControl(const ControlCommand& command, uint64_t features, uint16_t max_pairs,
                            RxFilter& filter);

class RxFilter {
 public:
  // Each table holds this many addresses; a driver that sends more gets all of that kind.
  static constexpr uint32_t kTableEntries = 64;

  // As a device starts (and after a reset): promiscuous, as QEMU's, so that a driver that never
  // programs the filter still receives everything; the driver turns it off when it opens.
  explicit RxFilter(const MacAddress& mac) : mac_(mac) {}

  // Whether the guest wants `frame` (an Ethernet frame, its header first). Frames shorter than
  // a destination address are refused.
  bool Accepts(absl::Span<const uint8_t> frame) const;

  const MacAddress& mac() const { return mac_; }
  bool promiscuous() const { return promiscuous_; }
  bool all_multicast() const { return all_multicast_; }

 private:
  friend ControlOutcome ApplyControl(const ControlCommand&, uint64_t, uint16_t, RxFilter&);
  MacAddress mac_;
  bool promiscuous_ = true;
  bool all_multicast_ = false;
  bool all_unicast_ = false;  // The unicast table overflowed.
  std::vector<MacAddress> unicast_, multicast_;
};

// Carries out `command` for a device that negotiated `features` and offers `max_pairs` queue
// pairs. Only commands of offered features succeed: CTRL_RX (promiscuous, all-multicast),
// MAC_TABLE_SET (CTRL_RX), MAC_ADDR_SET (CTRL_MAC_ADDR), VQ_PAIRS_SET (MQ; 1..max_pairs),
// GUEST_OFFLOADS_SET (CTRL_GUEST_OFFLOADS; a subset of the negotiated GUEST_* bits).
ControlOutcome ApplyControl(const ControlCommand& command, uint64_t features, uint16_t max_pairs,
                            RxFilter& filter);

}  // namespace vmmkit::virtio_net

#endif  // VMMKIT_VIRTIO_NET_CONTROL_H_
