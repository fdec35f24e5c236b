#include "vmm/machine.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "irq/irqchip.h"
#include "vmm/layout.h"

namespace vmmkit::vmm {

absl::StatusOr<std::unique_ptr<Machine>> Machine::Create(const MachineConfig& config) {
  std::unique_ptr<Machine> m(new Machine());
  ASSIGN_OR_RETURN(GuestMemory memory, GuestMemory::CreateRam(RamRegions(config.memory_bytes),
                                                              {.backing = config.backing,
                                                               .name = "vmm-guest-ram",
                                                               .prefault = config.prefault}));
  m->memory_ = std::make_unique<GuestMemory>(std::move(memory));
  m->dma_ = std::make_unique<IdentityDmaSpace>(*m->memory_);
  ASSIGN_OR_RETURN(kvm::Kvm kvm, kvm::Kvm::Open());
  m->kvm_ = std::make_unique<kvm::Kvm>(std::move(kvm));
  ASSIGN_OR_RETURN(m->vm_, m->kvm_->CreateVm());
  RETURN_IF_ERROR(m->vm_->SetTssAddress(kTssAddress));
  RETURN_IF_ERROR(m->vm_->SetIdentityMapAddress(kIdentityMapAddress));
  RETURN_IF_ERROR(irq::SetUpIrqchip(*m->vm_, irq::IrqchipMode::kInKernel));

  m->slots_ = std::make_unique<kvm::KvmMemorySlots>(m->vm_.get());
  RETURN_IF_ERROR(m->address_space_.RegisterListener(m->slots_.get()));
  for (size_t i = 0; i < m->memory_->regions().size(); ++i) {
    RETURN_IF_ERROR(m->address_space_.AddRam(absl::StrCat("ram", i), m->memory_->regions()[i]));
  }

  m->pci_ = std::make_shared<pci::PciRootBus>();
  RETURN_IF_ERROR(m->pio_.Insert(std::make_shared<pci::PciConfigIo>(m->pci_), kPortPciConfig, 8));
  RETURN_IF_ERROR(
      m->mmio_.Insert(std::make_shared<pci::PciConfigMmio>(m->pci_), kEcamBase, kEcamSize));
  ASSIGN_OR_RETURN(AddressAllocator mmio_space,
                   AddressAllocator::Create(kPciMmioStart, kPciMmioEnd - kPciMmioStart + 1));
  ASSIGN_OR_RETURN(AddressAllocator io_space,
                   AddressAllocator::Create(kPciIoStart, 0x10000 - kPciIoStart));
  const auto [mmio64, mmio64_size] = PciMmio64Window(config.memory_bytes);
  ASSIGN_OR_RETURN(AddressAllocator mmio64_space, AddressAllocator::Create(mmio64, mmio64_size));
  m->mmio64_space_ = std::make_unique<AddressAllocator>(std::move(mmio64_space));
  m->mmio_space_ = std::make_unique<AddressAllocator>(std::move(mmio_space));
  m->io_space_ = std::make_unique<AddressAllocator>(std::move(io_space));
  m->msi_routes_ = std::make_unique<irq::MsiRoutes>(*m->vm_, kMsiFirstGsi, kMsiGsiCount,
                                                    kvm::DefaultIrqchipRoutes());
  return m;
}

Machine::~Machine() {
  if (slots_ != nullptr) (void)address_space_.UnregisterListener(slots_.get());
}

size_t Machine::msi_route_count() {
  MutexLock lock(lock_);
  return msi_routes_->size();
}

size_t Machine::memory_listener_count() {
  MutexLock lock(lock_);
  return address_space_.listener_count();
}

}  // namespace vmmkit::vmm
