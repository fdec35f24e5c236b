#include "kvm/vcpu_exit.h"

#include "absl/strings/str_cat.h"

namespace vmmkit::kvm {
namespace {

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

}  // namespace vmmkit::kvm
