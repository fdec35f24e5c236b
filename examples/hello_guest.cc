// hello_guest: the smallest useful program built on vmmkit. It gives a guest 2 MiB of RAM, puts
// one vCPU straight into 64-bit mode, and runs a few bytes of machine code that print a greeting
// through I/O port 0x3f8 (where a PC's first serial port lives) and halt. The VMM's side is the
// loop at the bottom: run the vCPU, handle the exit, repeat.
//
//   bazel run //examples:hello_guest
#include <cstdio>
#include <cstring>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "kvm/kvm.h"
#include "kvm/long_mode.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "memory/guest_memory.h"

namespace {

using vmmkit::GuestAddress;
using vmmkit::GuestMemory;
namespace kvm = vmmkit::kvm;

constexpr GuestAddress kCode(0x1000);
constexpr GuestAddress kMessage(0x2000);
constexpr uint16_t kSerialPort = 0x3f8;

// The guest: print the NUL-terminated string at kMessage, one byte per OUT, then HLT.
const std::vector<uint8_t> kGuestCode = {
    0x48, 0xbe, 0x00, 0x20, 0, 0, 0, 0, 0, 0,  // mov rsi, 0x2000
    0x66, 0xba, 0xf8, 0x03,                    // mov dx, 0x3f8
    0xac,                                      // loop: lodsb
    0x84, 0xc0,                                // test al, al
    0x74, 0x03,                                // jz done
    0xee,                                      // out dx, al
    0xeb, 0xf8,                                // jmp loop
    0xf4,                                      // done: hlt
};

absl::Status Run() {
  // 1. Guest memory: one memfd-backed region at guest-physical address 0.
  ASSIGN_OR_RETURN(GuestMemory memory, GuestMemory::CreateRam({{GuestAddress(0), 2 << 20}}));
  RETURN_IF_ERROR(memory.Write(kCode, kGuestCode));
  const char message[] = "Hello from a vmmkit guest!\n";
  RETURN_IF_ERROR(memory.Write(
      kMessage,
      absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(message), sizeof(message))));

  // 2. A VM that maps that memory, and one vCPU in 64-bit mode at kCode.
  ASSIGN_OR_RETURN(kvm::Kvm kvm, kvm::Kvm::Open());
  ASSIGN_OR_RETURN(std::unique_ptr<kvm::Vm> vm, kvm.CreateVm());
  RETURN_IF_ERROR(vm->AddMemoryRegion(memory.regions()[0]).status());
  ASSIGN_OR_RETURN(std::unique_ptr<kvm::Vcpu> vcpu, vm->CreateVcpu(0));
  RETURN_IF_ERROR(kvm::EnterLongMode(memory, *vcpu));
  kvm_regs regs{};
  regs.rip = kCode.raw();
  regs.rflags = 0x2;  // Bit 1 of RFLAGS is reserved and must be set.
  RETURN_IF_ERROR(vcpu->SetRegs(regs));

  // 3. The VMM loop: every exit is a typed event to handle.
  for (;;) {
    ASSIGN_OR_RETURN(kvm::VcpuExit exit, vcpu->Run());
    if (auto* out = std::get_if<kvm::exit::IoOut>(&exit); out && out->port == kSerialPort) {
      std::fputc(static_cast<int>(out->value()), stdout);
    } else if (std::holds_alternative<kvm::exit::Hlt>(exit)) {
      std::fflush(stdout);
      return absl::OkStatus();
    } else {
      return absl::InternalError("unexpected exit: " + kvm::DescribeExit(exit));
    }
  }
}

}  // namespace

int main() {
  absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "hello_guest: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
