#include "virtio_net/control.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "virtio_net/protocol.h"

namespace vmmkit::virtio_net {
namespace {

template <typename T>
T Load(absl::Span<const uint8_t> data, size_t offset) {
  T value;
  std::memcpy(&value, data.data() + offset, sizeof(T));
  return value;
}

// One table of MAC_TABLE_SET at `offset`: le32 entries, then entries * 6 bytes. Moves `offset`
// past it; false if it does not fit in `data`.
bool ReadTable(absl::Span<const uint8_t> data, size_t& offset, std::vector<MacAddress>& table,
               bool& overflow) {
  if (data.size() - offset < 4) return false;
  const uint32_t entries = Load<uint32_t>(data, offset);
  offset += 4;
  if (entries > (data.size() - offset) / 6) return false;
  table.clear();
  overflow = entries > RxFilter::kTableEntries;
  if (!overflow) {
    for (uint32_t i = 0; i < entries; ++i) {
      MacAddress mac;
      std::memcpy(mac.data(), data.data() + offset + 6 * i, 6);
      table.push_back(mac);
    }
  }
  offset += 6 * size_t{entries};
  return true;
}

}  // namespace

absl::StatusOr<ControlCommand> ParseControl(const virtio::DescriptorChain& chain,
                                            const DmaSpace& dma) {
  if (chain.readable_bytes < 2 || chain.readable_bytes > 2 + kMaxControlData) {
    return absl::InvalidArgumentError(absl::StrCat("virtio-net: control command of ",
                                                   chain.readable_bytes, " bytes (2 to ",
                                                   2 + kMaxControlData, ")"));
  }
  if (chain.writable_bytes < 1) {
    return absl::InvalidArgumentError("virtio-net: control command with no room for its ack");
  }
  std::vector<uint8_t> bytes(chain.readable_bytes);
  size_t at = 0;
  for (const virtio::Buffer& b : chain.readable) {
    if (absl::Status s = dma.Read(b.addr, absl::MakeSpan(bytes.data() + at, b.len)); !s.ok()) {
      return s;
    }
    at += b.len;
  }
  ControlCommand c;
  c.cls = bytes[0];
  c.cmd = bytes[1];
  c.data.assign(bytes.begin() + 2, bytes.end());
  c.ack = chain.writable.front().addr;
  for (const virtio::Buffer& b : chain.writable) {
    if (b.len > 0) {
      c.ack = b.addr;
      break;
    }
  }
  return c;
}

bool RxFilter::Accepts(absl::Span<const uint8_t> frame) const {
  if (frame.size() < 6) return false;
  if (promiscuous_) return true;
  MacAddress dst;
  std::memcpy(dst.data(), frame.data(), 6);
  if ((dst[0] & 1) != 0) {  // Group address: broadcast or multicast.
    if (std::all_of(dst.begin(), dst.end(), [](uint8_t b) { return b == 0xff; })) return true;
    return all_multicast_ ||
           std::find(multicast_.begin(), multicast_.end(), dst) != multicast_.end();
  }
  return all_unicast_ || dst == mac_ ||
         std::find(unicast_.begin(), unicast_.end(), dst) != unicast_.end();
}

ControlOutcome ApplyControl(const ControlCommand& command, uint64_t features, uint16_t max_pairs,
                            RxFilter& filter) {
  ControlOutcome out;
  out.ack = kCtrlErr;
  const absl::Span<const uint8_t> data(command.data);
  switch (command.cls) {
    case kCtrlRx:
      if ((features & kFeatureCtrlRx) == 0 || data.size() != 1) return out;
      if (command.cmd == kCtrlRxPromisc) {
        filter.promiscuous_ = data[0] != 0;
      } else if (command.cmd == kCtrlRxAllMulti) {
        filter.all_multicast_ = data[0] != 0;
      } else {
        return out;
      }
      break;
    case kCtrlMac:
      if (command.cmd == kCtrlMacTableSet && (features & kFeatureCtrlRx) != 0) {
        // Both tables parse, and fill the data exactly, or nothing changes.
        std::vector<MacAddress> unicast, multicast;
        bool all_unicast = false, multicast_overflow = false;
        size_t offset = 0;
        if (!ReadTable(data, offset, unicast, all_unicast) ||
            !ReadTable(data, offset, multicast, multicast_overflow) || offset != data.size()) {
          return out;
        }
        filter.unicast_ = std::move(unicast);
        filter.multicast_ = std::move(multicast);
        filter.all_unicast_ = all_unicast;
        // Too many multicast addresses: all of them, as the driver would have asked.
        if (multicast_overflow) filter.all_multicast_ = true;
      } else if (command.cmd == kCtrlMacAddrSet && (features & kFeatureCtrlMacAddr) != 0 &&
                 data.size() == 6) {
        std::memcpy(filter.mac_.data(), data.data(), 6);
      } else {
        return out;
      }
      break;
    case kCtrlMq: {
      if ((features & kFeatureMq) == 0 || command.cmd != kCtrlMqPairsSet || data.size() != 2) {
        return out;
      }
      const uint16_t pairs = Load<uint16_t>(data, 0);
      if (pairs < 1 || pairs > max_pairs) return out;
      out.pairs = pairs;
      break;
    }
    case kCtrlGuestOffloads: {
      if ((features & kFeatureCtrlGuestOffloads) == 0 || command.cmd != kCtrlGuestOffloadsSet ||
          data.size() != 8) {
        return out;
      }
      const uint64_t offloads = Load<uint64_t>(data, 0);
      // Only receive offloads, only negotiated ones.
      if ((offloads & ~(features & kGuestOffloads)) != 0) return out;
      out.offloads = offloads;
      break;
    }
    default:
      return out;
  }
  out.ack = kCtrlOk;
  return out;
}

}  // namespace vmmkit::virtio_net
