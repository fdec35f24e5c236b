#include "vmm/machine.h"

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "iommu/vtd/dma_space.h"
#include "irq/irqchip.h"
#include "vmm/layout.h"

namespace vmmkit::vmm {
namespace {

// A device whose accesses are made under the machine lock: the VT-d unit's register writes
// change host IOMMU mappings, which follow the address space that vCPUs also change.
class UnderMachineLock : public devices::BusDevice {
 public:
  UnderMachineLock(std::shared_ptr<devices::BusDevice> device, Mutex& lock)
      : device_(std::move(device)), lock_(lock) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    MutexLock lock(lock_);
    device_->Read(offset, data);
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    MutexLock lock(lock_);
    device_->Write(offset, data);
  }

 private:
  const std::shared_ptr<devices::BusDevice> device_;
  Mutex& lock_;
};

}  // namespace

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
  RETURN_IF_ERROR(irq::SetUpIrqchip(*m->vm_, config.irqchip));

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
  const bool split = config.irqchip == irq::IrqchipMode::kSplit;
  const bool remapping = config.iommu && split;
  Machine* machine = m.get();
  if (config.iommu) {
    // Its own interrupts (fault events, invalidation waits) are plain MSIs from the platform.
    // With a split irqchip it remaps interrupts too: it is then the route table's translator, and
    // what the guest changes in its remapping table re-translates the routes (its register
    // writes come under the machine lock, which the routes need).
    m->iommu_ = std::make_shared<iommu::vtd::RemappingUnit>(
        *m->memory_,
        iommu::vtd::UnitOptions{
            .caching_mode = config.iommu_caching_mode,
            .send_msi = [vm = m->vm_.get()](uint64_t a, uint32_t d) { (void)vm->SignalMsi(a, d); },
            .interrupt_remapping = remapping,
            .on_interrupt_entries_changed =
                [machine]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
                  machine->lock_.AssertHeld();
                  if (absl::Status s = machine->msi_routes_->Retranslate(); !s.ok()) {
                    LogWarning(s.message());
                  }
                  if (machine->ioapic_ != nullptr) machine->ioapic_->Reroute();
                }});
    RETURN_IF_ERROR(m->mmio_.Insert(std::make_shared<UnderMachineLock>(m->iommu_, m->lock_),
                                    kVtdBase, iommu::vtd::RemappingUnit::kSize));
  }
  m->msi_routes_ = std::make_unique<irq::MsiRoutes>(
      *m->vm_, kMsiFirstGsi, kMsiGsiCount,
      split ? std::vector<kvm::GsiRoute>{} : kvm::DefaultIrqchipRoutes(),
      remapping ? m->iommu_.get() : nullptr);
  if (split) {
    // The IOAPIC's registers are written under the machine lock: a redirection entry becomes a
    // route in the machine's table.
    m->ioapic_sink_ =
        std::make_unique<irq::IoapicKvmSink>(*m->vm_, *m->msi_routes_, kIoapicSourceId);
    m->ioapic_ = std::make_shared<irq::Ioapic>(*m->ioapic_sink_, config.ioapic_id);
    RETURN_IF_ERROR(m->mmio_.Insert(std::make_shared<UnderMachineLock>(m->ioapic_, m->lock_),
                                    kIoapicAddress, irq::Ioapic::kSize));
    ASSIGN_OR_RETURN(m->irq_lines_, irq::IoapicIrqLines::Create(*m->ioapic_));
  } else {
    m->irq_lines_ = std::make_unique<irq::KvmIrqLines>(*m->vm_);
  }
  return m;
}

std::unique_ptr<DmaSpace> Machine::DmaFor(uint16_t requester_id) {
  if (iommu_ == nullptr) return std::make_unique<IdentityDmaSpace>(*memory_);
  return std::make_unique<iommu::vtd::VtdDmaSpace>(*iommu_, *memory_, requester_id);
}

void Machine::SignalMsi(const irq::MsiMessage& msg, uint16_t source_id) {
  irq::MsiMessage delivered = msg;
  if (iommu_ != nullptr) {
    absl::StatusOr<irq::MsiMessage> t = iommu_->Translate(msg, source_id);
    if (!t.ok()) return;
    delivered = *t;
  }
  (void)vm_->SignalMsi(delivered.address, delivered.data);
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
