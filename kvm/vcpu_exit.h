// File: kvm/vcpu_exit.h
// -----------------------------------------------------------------------------
// VcpuExit: why Vcpu::Run() returned, as a std::variant of typed exits decoded from kvm_run.
// Read exits (IoIn, MmioRead) carry a span into kvm_run: fill it (SetValue) before the next Run()
// and the guest's instruction completes with that data. Spans are valid until the next Run().
//
//   ASSIGN_OR_RETURN(VcpuExit exit, vcpu->Run());
//   if (auto* in = std::get_if<exit::IoIn>(&exit)) in->SetValue(uart.Read(in->port));
//   else if (std::holds_alternative<exit::Hlt>(exit)) ...

#ifndef VMMKIT_KVM_VCPU_EXIT_H_
#define VMMKIT_KVM_VCPU_EXIT_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

struct kvm_run;

namespace vmmkit::kvm {
namespace exit {

// Little-endian value of the first min(8, data.size()) bytes.
inline uint64_t LoadLe(absl::Span<const uint8_t> data) {
  uint64_t v = 0;
  std::memcpy(&v, data.data(), data.size() < 8 ? data.size() : 8);
  return v;
}
// Stores the low data.size() bytes of `v` (little-endian) into data.
inline void StoreLe(absl::Span<uint8_t> data, uint64_t v) {
  std::memcpy(data.data(), &v, data.size() < 8 ? data.size() : 8);
}

// The guest executed IN/INS: `count` accesses of `size` (1, 2 or 4) bytes from `port`.
struct IoIn {
  uint16_t port;
  uint8_t size;
  uint32_t count;
  absl::Span<uint8_t> data;  // size * count bytes in kvm_run.
  // Answers every one of the `count` accesses with the low `size` bytes of `value`.
  void SetValue(uint64_t value) const {
    for (uint32_t i = 0; i < count; ++i) StoreLe(data.subspan(i * size, size), value);
  }
};
// The guest executed OUT/OUTS.
struct IoOut {
  uint16_t port;
  uint8_t size;
  uint32_t count;
  absl::Span<const uint8_t> data;                                   // size * count bytes.
  uint64_t value() const { return LoadLe(data.subspan(0, size)); }  // The first access.
};
// The guest read 1..8 bytes of MMIO at `address`.
struct MmioRead {
  uint64_t address;
  absl::Span<uint8_t> data;
  void SetValue(uint64_t value) const { StoreLe(data, value); }
};
// The guest wrote 1..8 bytes of MMIO at `address`.
struct MmioWrite {
  uint64_t address;
  absl::Span<const uint8_t> data;
  uint64_t value() const { return LoadLe(data); }
};
struct Hlt {};
// Triple fault (or another reason the CPU shut down).
struct Shutdown {};
// KVM_EXIT_SYSTEM_EVENT: shutdown, reset or crash requested through a paravirtual interface.
struct SystemEvent {
  uint32_t type;  // KVM_SYSTEM_EVENT_*.
  uint64_t flags;
};
// KVM could not emulate something (KVM_EXIT_INTERNAL_ERROR).
struct InternalError {
  uint32_t suberror;  // KVM_INTERNAL_ERROR_*.
};
// VM entry failed (KVM_EXIT_FAIL_ENTRY): bad guest state.
struct FailEntry {
  uint64_t hardware_entry_failure_reason;
  uint32_t cpu;
};
// KVM_EXIT_IOAPIC_EOI (split irqchip): the guest EOIed `vector`, which a level-triggered route of
// the userspace IOAPIC delivered; the IOAPIC clears the pin's remote IRR.
struct IoapicEoi {
  uint8_t vector;
};
// Run() returned because of a signal or Kick() (EINTR / KVM_EXIT_INTR / immediate_exit).
struct Interrupted {};
// Any exit reason this wrapper does not decode; kvm_run is still available through the Vcpu.
struct Unknown {
  uint32_t reason;  // KVM_EXIT_*.
};

}  // namespace exit

using VcpuExit = std::variant<exit::IoIn, exit::IoOut, exit::MmioRead, exit::MmioWrite, exit::Hlt,
                              exit::Shutdown, exit::SystemEvent, exit::InternalError,
                              exit::FailEntry, exit::IoapicEoi, exit::Interrupted, exit::Unknown>;

// Decodes the exit KVM_RUN left in `run`, a kvm_run mapping of `run_size` bytes (an I/O exit's
// data lies in the same mapping, at io.data_offset). Every field is checked before it is used, as
// if the guest had chosen it: an I/O exit of a size other than 1, 2 or 4, of count 0, or whose
// data does not lie wholly inside the mapping, and an MMIO exit of length 0 or over 8, are
// INTERNAL errors naming `vcpu_id`. The result's spans point into `run`. Vcpu::Run() calls it;
// it is public so that decoding can be tested and fuzzed without /dev/kvm.
absl::StatusOr<VcpuExit> DecodeExit(kvm_run& run, size_t run_size, uint32_t vcpu_id);

// A short description for logs, e.g. "IoOut port=0x3f8 size=1" or "Shutdown".
std::string DescribeExit(const VcpuExit& exit);

}  // namespace vmmkit::kvm

#endif  // VMMKIT_KVM_VCPU_EXIT_H_
