// warm_kernel: runs, once and without a VMM, the L1 kernel code that a hot-add of a vfio-pci device
// runs under either VMM, so that neither VMM's first AddDevice / device_add in the hotplug
// benchmark pays for running that code first. L0 is TCG, which translates L1's code the first time
// it runs (a cost real hardware does not have), and L1's kernel is one copy shared by both VMMs:
// measured, whichever VMM went first paid about 170 ms more on its first add (vmm first: its first
// add 438 ms against QEMU's 236; QEMU first: QEMU 274, vmm 264). This does, in the kernel, what
// either VMM's hot-add does: VFIO container, group and device (vfio-pci enables and resets it),
// a DMA map of anonymous memory that is faulted in by the map, MSI and INTx through VFIO, and an
// MSI route, an irqfd and a resampling INTx irqfd in a KVM VM with an in-kernel irqchip; then it
// undoes all of it (the VFIO device is left as it was found, bound to vfio-pci and closed).
// Usage: warm_kernel EDU_BDF. Prints one line; exits 1 if a step fails.
#include <linux/vfio.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "base/event_fd.h"
#include "base/status_macros.h"
#include "irq/msi_routes.h"
#include "kvm/kvm.h"
#include "kvm/testing/tiny_guest.h"
#include "kvm/vm.h"
#include "memory/guest_region.h"
#include "tests/lab/vfio/own_container.h"

namespace vmmkit {
namespace {

constexpr uint64_t kRamSize = 64 << 20;  // Enough to run the pinning and fault paths.

absl::Status Warm(const std::string& bdf) {
  ASSIGN_OR_RETURN(kvm::Kvm kvm, kvm::Kvm::Open());
  ASSIGN_OR_RETURN(
      kvm::testing::TinyGuest guest,
      kvm::testing::MakeTinyGuest(kvm, kvm::testing::CpuMode::kLong, {0xf4}, {.irqchip = true}));
  ASSIGN_OR_RETURN(vfio::OwnContainerDevice edu, vfio::OpenInOwnContainer(bdf));
  // Never touched before the map, as most of a fresh guest's RAM is: the map faults it in.
  ASSIGN_OR_RETURN(std::shared_ptr<GuestRegion> ram,
                   GuestRegion::Create(GuestAddress(0), kRamSize));
  RETURN_IF_ERROR(edu.container->MapDma(Iova(0), *ram, 0, kRamSize, /*writable=*/true));
  const vfio::VfioDevice& device = *edu.device;
  ASSIGN_OR_RETURN(EventFd intx, EventFd::Create());
  ASSIGN_OR_RETURN(EventFd resample, EventFd::Create());
  ASSIGN_OR_RETURN(EventFd msi, EventFd::Create());
  constexpr uint32_t kIntxGsi = 10;
  RETURN_IF_ERROR(guest.vm->AssignIrqfdWithResample(intx, resample, kIntxGsi));
  const int intx_fd = intx.fd();
  RETURN_IF_ERROR(device.EnableIrqs(VFIO_PCI_INTX_IRQ_INDEX, 0, absl::MakeConstSpan(&intx_fd, 1)));
  RETURN_IF_ERROR(device.SetIntxUnmaskEventfd(resample.fd()));
  RETURN_IF_ERROR(device.DisableIrqs(VFIO_PCI_INTX_IRQ_INDEX));
  RETURN_IF_ERROR(guest.vm->DeassignIrqfd(intx, kIntxGsi));
  irq::MsiRoutes routes(*guest.vm, 24, 8, kvm::DefaultIrqchipRoutes());
  RETURN_IF_ERROR(routes.Enable({1, 0}, {0xfee00000, 0x41}, 0, msi).status());
  const int msi_fd = msi.fd();
  RETURN_IF_ERROR(device.EnableIrqs(VFIO_PCI_MSI_IRQ_INDEX, 0, absl::MakeConstSpan(&msi_fd, 1)));
  RETURN_IF_ERROR(device.DisableIrqs(VFIO_PCI_MSI_IRQ_INDEX));
  RETURN_IF_ERROR(routes.DisableDevice(1));
  edu.device.reset();  // Closed (vfio-pci resets it) before its memory is unmapped.
  return edu.container->UnmapDma(Iova(0), kRamSize);
}

}  // namespace
}  // namespace vmmkit

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: warm_kernel EDU_BDF\n");
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (absl::Status s = vmmkit::Warm(argv[1]); !s.ok()) {
    std::fprintf(stderr, "warm_kernel: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf(
      "warm_kernel: the kernel's hot-add paths ran once in %.0f ms\n",
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}
