#include "memory/dma_space.h"

#include "absl/strings/str_cat.h"

namespace vmmkit {
namespace {

absl::Status Dma(const char* op, Iova iova, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(
      s.code(), absl::StrCat("DMA ", op, " at bus address ", iova.ToString(), ": ", s.message()));
}

}  // namespace

absl::Status IdentityDmaSpace::Read(Iova iova, absl::Span<uint8_t> dst) const {
  return Dma("read", iova, memory_.Read(GuestAddress(iova.raw()), dst));
}

absl::Status IdentityDmaSpace::Write(Iova iova, absl::Span<const uint8_t> src) const {
  return Dma("write", iova, memory_.Write(GuestAddress(iova.raw()), src));
}

}  // namespace vmmkit
