#include "loader/image.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::loader {

absl::Status RequireRam(const GuestMemory& memory, GuestAddress start, uint64_t size,
                        const std::string& what) {
  if (size == 0) return absl::OkStatus();
  absl::StatusOr<uint8_t*> host = memory.Translate(start, size);
  if (!host.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, " [", start.ToString(), ", +", Hex(size),
                     ") does not fit in guest RAM: ", host.status().message()));
  }
  return absl::OkStatus();
}

absl::Status WriteChunks(const GuestMemory& memory, absl::Span<const Chunk> chunks) {
  for (const Chunk& c : chunks) {
    RETURN_IF_ERROR(memory.Write(c.address, c.bytes));
    if (c.zero_fill > 0) {
      ASSIGN_OR_RETURN(
          uint8_t * bss,
          memory.Translate(GuestAddress(c.address.raw() + c.bytes.size()), c.zero_fill));
      std::memset(bss, 0, c.zero_fill);
    }
  }
  return absl::OkStatus();
}

}  // namespace vmmkit::loader
