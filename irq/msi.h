// File: irq/msi.h
// -----------------------------------------------------------------------------
// MsiMessage: the address/data pair a PCI function writes to raise a message-signalled interrupt,
// and MsiTranslator, what decides the message KVM delivers for one a device raised: a message in
// remappable format (x86 interrupt remapping: it carries a handle into the IOMMU's interrupt
// remapping table instead of a vector and destination) becomes a compatibility-format one, and
// a compatibility-format one passes or is blocked, as the remapping hardware's state says. irq/
// routes messages; the translation is the IOMMU's (iommu/'s InterruptRemappingTable and
// iommu/vtd's RemappingUnit implement MsiTranslator).
//
//   irq::MsiMessage msg{.address = 0xfee00000, .data = 0x41};   // vector 0x41 to APIC 0
//   ASSIGN_OR_RETURN(msg, translator.Translate(msg, rid));

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
  // The compatibility-format message to deliver for `msg`, in either format, from requester
  // `source_id` (bus << 8 | devfn): a remappable one translated, a compatibility-format one
  // passed unchanged unless the remapping hardware blocks that format (VT-d with remapping on
  // and CFI clear); an error if the requester may not raise it (a translator may record the
  // rejection where the guest sees it, as an IOMMU's fault log).
  virtual absl::StatusOr<MsiMessage> Translate(const MsiMessage& msg, uint16_t source_id) = 0;
};

}  // namespace vmmkit::irq

#endif  // VMMKIT_IRQ_MSI_H_
