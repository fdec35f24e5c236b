#include "irq/irqchip.h"

#include "base/status_macros.h"

namespace vmmkit::irq {

absl::Status SetUpIrqchip(kvm::Vm& vm, IrqchipMode mode) {
  switch (mode) {
    case IrqchipMode::kInKernel:
      RETURN_IF_ERROR(vm.CreateIrqchip());
      return vm.CreatePit2(KVM_PIT_SPEAKER_DUMMY);
    case IrqchipMode::kSplit:
      return vm.EnableSplitIrqchip(kIoapicPins);
  }
  return absl::InvalidArgumentError("unknown irqchip mode");
}

}  // namespace vmmkit::irq
