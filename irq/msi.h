// File: irq/msi.h
// -----------------------------------------------------------------------------
// MsiMessage: the address/data pair a PCI function writes to raise a message-signalled interrupt,
// and MsiTranslator, what turns a message in remappable format (x86 interrupt remapping: the
// message carries a handle into the IOMMU's interrupt remapping table instead of a vector and
// destination) into the compatibility-format message KVM delivers. irq/ routes messages; the
// translation is the IOMMU's (iommu/'s InterruptRemappingTable implements MsiTranslator).
//
//   irq::MsiMessage msg{.address = 0xfee00000, .data = 0x41};   // vector 0x41 to APIC 0
//   if (irq::IsRemappableFormat(msg)) ASSIGN_OR_RETURN(msg, translator.Translate(msg, rid));

#ifndef VMMKIT_IRQ_MSI_H_
#define VMMKIT_IRQ_MSI_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace vmmkit::irq {

struct MsiMessage {
  uint64_t address = 0;  // Bits 63:32 carry destination bits 31:8 (KVM's x2APIC extension).
  uint32_t data = 0;
  friend bool operator==(const MsiMessage&, const MsiMessage&) = default;
};

// An x86 MSI in remappable format: address 0xfeexxxxx with bit 4 (Interrupt Format) set.
inline bool IsRemappableFormat(const MsiMessage& msg) {
  return ((msg.address >> 20) & 0xfff) == 0xfee && ((msg.address >> 4) & 1) == 1;
}

class MsiTranslator {
 public:
  virtual ~MsiTranslator() = default;
  // The compatibility-format message for a remappable-format `msg` from requester `source_id`
  // (bus << 8 | devfn); an error if the requester may not raise it (a translator may record the
  // rejection where the guest sees it, as an IOMMU's fault log).
  virtual absl::StatusOr<MsiMessage> Translate(const MsiMessage& msg, uint16_t source_id) = 0;
};

}  // namespace vmmkit::irq

#endif  // VMMKIT_IRQ_MSI_H_
