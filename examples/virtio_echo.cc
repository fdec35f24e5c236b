#include "examples/virtio_echo.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

#include "base/status_macros.h"

namespace vmmkit::examples {

absl::StatusOr<bool> EchoDevice::Process() {
  while (true) {
    ASSIGN_OR_RETURN(std::optional<virtio::DescriptorChain> chain, queue_.Pop(dma_));
    if (!chain) break;
    // Gather the request, up to kMaxEcho bytes.
    std::vector<uint8_t> message;
    for (const virtio::Buffer& b : chain->readable) {
      const uint32_t n =
          std::min<uint32_t>(b.len, kMaxEcho - static_cast<uint32_t>(message.size()));
      const size_t at = message.size();
      message.resize(at + n);
      RETURN_IF_ERROR(dma_.Read(b.addr, absl::MakeSpan(message).subspan(at, n)));
    }
    for (uint8_t& c : message) c = static_cast<uint8_t>(std::toupper(c));
    // Scatter it into the response buffers, as far as they go.
    uint32_t written = 0;
    for (const virtio::Buffer& b : chain->writable) {
      if (written == message.size()) break;
      const uint32_t n = std::min<uint32_t>(b.len, static_cast<uint32_t>(message.size()) - written);
      RETURN_IF_ERROR(dma_.Write(b.addr, absl::MakeConstSpan(message).subspan(written, n)));
      written += n;
    }
    RETURN_IF_ERROR(queue_.AddUsed(dma_, chain->head, written));
    ++requests_;
  }
  return queue_.NeedsInterrupt(dma_);
}

}  // namespace vmmkit::examples
