#include "kvm/vcpu_exit.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kvm/internal/kvm_abi.h"

namespace vmmkit::kvm {
namespace {

// The `len` bytes at `offset` into the kvm_run mapping, or an error if they do not all fit.
absl::StatusOr<absl::Span<uint8_t>> RunAreaSpan(kvm_run& run, size_t run_size, uint32_t vcpu_id,
                                                uint64_t offset, uint64_t len, const char* what) {
  if (offset > run_size || len > run_size - offset) {
    return absl::InternalError(absl::StrCat("KVM_RUN vcpu=", vcpu_id, ": ", what,
                                            " data at offset ", offset, " length ", len,
                                            " lies outside kvm_run (", run_size, " bytes)"));
  }
  return absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&run) + offset, len);
}

struct Describer {
  std::string operator()(const exit::IoIn& e) const {
    return absl::StrCat("IoIn port=0x", absl::Hex(e.port), " size=", e.size, " count=", e.count);
  }
  std::string operator()(const exit::IoOut& e) const {
    return absl::StrCat("IoOut port=0x", absl::Hex(e.port), " size=", e.size, " count=", e.count,
                        " value=0x", absl::Hex(e.value()));
  }
  std::string operator()(const exit::MmioRead& e) const {
    return absl::StrCat("MmioRead address=0x", absl::Hex(e.address), " len=", e.data.size());
  }
  std::string operator()(const exit::MmioWrite& e) const {
    return absl::StrCat("MmioWrite address=0x", absl::Hex(e.address), " len=", e.data.size(),
                        " value=0x", absl::Hex(e.value()));
  }
  std::string operator()(const exit::Hlt&) const { return "Hlt"; }
  std::string operator()(const exit::Shutdown&) const { return "Shutdown"; }
  std::string operator()(const exit::SystemEvent& e) const {
    return absl::StrCat("SystemEvent type=", e.type, " flags=0x", absl::Hex(e.flags));
  }
  std::string operator()(const exit::InternalError& e) const {
    return absl::StrCat("InternalError suberror=", e.suberror);
  }
  std::string operator()(const exit::FailEntry& e) const {
    return absl::StrCat("FailEntry reason=0x", absl::Hex(e.hardware_entry_failure_reason),
                        " cpu=", e.cpu);
  }
  std::string operator()(const exit::IoapicEoi& e) const {
    return absl::StrCat("IoapicEoi vector=", e.vector);
  }
  std::string operator()(const exit::Interrupted&) const { return "Interrupted"; }
  std::string operator()(const exit::Unknown& e) const {
    return absl::StrCat("Unknown reason=", e.reason);
  }
};

}  // namespace

std::string DescribeExit(const VcpuExit& exit) { return std::visit(Describer{}, exit); }

absl::StatusOr<VcpuExit> DecodeExit(kvm_run& run, size_t run_size, uint32_t vcpu_id) {
  switch (run.exit_reason) {
    case KVM_EXIT_IO: {
      const uint8_t size = run.io.size;
      const uint32_t count = run.io.count;
      if ((size != 1 && size != 2 && size != 4) || count == 0) {
        return absl::InternalError(absl::StrCat("KVM_RUN vcpu=", vcpu_id, ": I/O exit with size ",
                                                size, " count ", count));
      }
      absl::StatusOr<absl::Span<uint8_t>> data =
          RunAreaSpan(run, run_size, vcpu_id, run.io.data_offset, uint64_t{size} * count, "I/O");
      if (!data.ok()) return data.status();
      if (run.io.direction == KVM_EXIT_IO_IN) return exit::IoIn{run.io.port, size, count, *data};
      return exit::IoOut{run.io.port, size, count, *data};
    }
    case KVM_EXIT_MMIO: {
      const uint32_t len = run.mmio.len;
      if (len == 0 || len > sizeof(run.mmio.data)) {
        return absl::InternalError(
            absl::StrCat("KVM_RUN vcpu=", vcpu_id, ": MMIO exit with length ", len));
      }
      absl::Span<uint8_t> data(run.mmio.data, len);
      if (run.mmio.is_write) return exit::MmioWrite{run.mmio.phys_addr, data};
      return exit::MmioRead{run.mmio.phys_addr, data};
    }
    case KVM_EXIT_HLT:
      return exit::Hlt{};
    case KVM_EXIT_SHUTDOWN:
      return exit::Shutdown{};
    case KVM_EXIT_SYSTEM_EVENT:
      return exit::SystemEvent{run.system_event.type, run.system_event.flags};
    case KVM_EXIT_INTERNAL_ERROR:
      return exit::InternalError{run.internal.suberror};
    case KVM_EXIT_FAIL_ENTRY:
      return exit::FailEntry{run.fail_entry.hardware_entry_failure_reason, run.fail_entry.cpu};
    case KVM_EXIT_IOAPIC_EOI:
      return exit::IoapicEoi{run.eoi.vector};
    case KVM_EXIT_INTR:
      return exit::Interrupted{};
    default:
      return exit::Unknown{run.exit_reason};
  }
}

}  // namespace vmmkit::kvm
