// Fuzzes the virtio PCI transport as a hostile driver reaches it: configuration-space reads and
// writes (any dword, any byte mask: the capabilities, MSI-X control, the access window) and BAR
// accesses of any width at any offset, biased to the register file, notify addresses and MSI-X
// table; the device raising interrupts and popping whatever rings the driver configured (in
// guest memory the fuzzer also writes). Checked: nothing crashes or touches memory it should not
// (ASan); DRIVER_OK is never set without FEATURES_OK; the device is never activated twice
// without a reset between; every MSI sent is a message the guest programmed into the table;
// after Detach every read is all ones.
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "memory/dma_space.h"
#include "memory/guest_memory.h"
#include "tools/testing/fuzz_input.h"
#include "virtio/testing/driver_queue.h"
#include "virtio_pci/transport.h"

namespace vmmkit::virtio_pci {
namespace {

using fuzzing::Require;

class FuzzDevice : public VirtioDevice {
 public:
  explicit FuzzDevice(const DmaSpace& dma) : dma_(dma) {}
  uint16_t device_type() const override { return 2; }
  uint32_t class_code() const override { return 0x018000; }
  uint64_t device_features() const override { return uint64_t{1} << 9; }
  uint16_t num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return 16; }
  uint32_t config_size() const override { return 8; }
  void ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override {
    Require(offset + data.size() <= 8, "a device configuration read past its size");
    std::memcpy(data.data(), config + offset, data.size());
  }
  void WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) override {
    Require(offset + data.size() <= 8, "a device configuration write past its size");
    std::memcpy(config + offset, data.data(), data.size());
  }
  absl::Status Activate(Activation a) override {
    Require(!active, "activated twice without a reset");
    // A device that fails to start is not active (the transport will not reset it).
    if (fail_next) return absl::InternalError("fuzz");
    active = true;
    queues = std::move(a.queues);
    interrupt = std::move(a.interrupt);
    needs_reset = std::move(a.needs_reset);
    return absl::OkStatus();
  }
  void QueueNotify(uint16_t index) override {
    Require(active, "a notification reached an inactive device");
    if (index >= queues.size() || !queues[index]) return;
    for (int i = 0; i < 32; ++i) {
      absl::StatusOr<std::optional<virtio::DescriptorChain>> c = queues[index]->Pop(dma_);
      if (!c.ok() || !c->has_value()) break;
      (void)queues[index]->AddUsed(dma_, (*c)->head, 0);
    }
    absl::StatusOr<bool> irq = queues[index]->NeedsInterrupt(dma_);
    if (irq.ok() && *irq) interrupt(index);
  }
  void Reset() override {
    active = false;
    queues.clear();
  }

  const DmaSpace& dma_;
  uint8_t config[8] = {};
  bool active = false, fail_next = false;
  std::vector<std::optional<virtio::SplitQueue>> queues;
  Interrupt interrupt;
  std::function<void()> needs_reset;
};

uint64_t TakeOffset(fuzzing::FuzzInput& in) {
  static constexpr uint64_t kBases[] = {
      VirtioPciFunction::kCommonOffset,    VirtioPciFunction::kIsrOffset,
      VirtioPciFunction::kDeviceOffset,    VirtioPciFunction::kNotifyOffset,
      VirtioPciFunction::kMsixTableOffset, VirtioPciFunction::kMsixPbaOffset};
  const uint8_t pick = in.Take<uint8_t>();
  if (pick < 0xf0) return kBases[pick % std::size(kBases)] + in.Take<uint8_t>() % 0x40;
  return in.Take<uint16_t>();
}

void Run(const uint8_t* data, size_t size) {
  static const GuestMemory* memory = new GuestMemory(virtio::testing::TestGuestMemory(64 << 10));
  std::vector<uint8_t> zeros(64 << 10);
  Require(memory->Write(GuestAddress(0), zeros).ok(), "clearing guest memory");
  IdentityDmaSpace dma(*memory);
  auto device = std::make_shared<FuzzDevice>(dma);
  std::set<std::pair<uint64_t, uint32_t>> programmed;  // Every message the table ever held.
  std::vector<std::pair<uint64_t, uint32_t>> sent;     // MSIs of the current operation.
  std::shared_ptr<VirtioPciFunction> fn;
  absl::StatusOr<std::shared_ptr<VirtioPciFunction>> created =
      VirtioPciFunction::Create(device, [&](uint64_t address, uint32_t d) {
        sent.push_back({address, d});
      });
  Require(created.ok(), "Create");
  fn = *created;
  Require(
      fn->PlaceBars([](const pci::Bar&) -> absl::StatusOr<uint64_t> { return 0xc0000000; }).ok(),
      "PlaceBars");
  // What the table holds, recorded before each write to it can make it deliverable.
  auto record_table = [&] {
    for (uint16_t v = 0; v < 3; ++v) {
      uint8_t e[16];
      fn->BarRead(VirtioPciFunction::kMsixTableOffset + 16 * v, absl::MakeSpan(e, 8));
      fn->BarRead(VirtioPciFunction::kMsixTableOffset + 16 * v + 8, absl::MakeSpan(e + 8, 8));
      uint64_t address;
      uint32_t d;
      std::memcpy(&address, e, 8);
      std::memcpy(&d, e + 8, 4);
      programmed.insert({address, d});
    }
  };
  fuzzing::FuzzInput in(data, size);
  bool detached = false;
  for (int ops = 0; !in.done() && ops < 200; ++ops) {
    const uint8_t op = in.Take<uint8_t>() % 8;
    uint8_t buf[8] = {};
    const size_t len = std::size_t{1} << (in.Take<uint8_t>() % 4);
    switch (op) {
      case 0:
        (void)fn->ConfigRead(static_cast<uint16_t>((in.Take<uint8_t>() & 0xfc)));
        break;
      case 1:
        fn->ConfigWrite(static_cast<uint16_t>(in.Take<uint8_t>() & 0xfc), in.Take<uint32_t>(),
                        in.Take<uint8_t>() & 0xf);
        break;
      case 2:
        fn->BarRead(TakeOffset(in), absl::MakeSpan(buf, len));
        if (detached) {
          for (size_t i = 0; i < len; ++i) Require(buf[i] == 0xff, "a detached function answered");
        }
        break;
      case 3:
      case 4: {
        const uint64_t offset = TakeOffset(in);
        const uint64_t v = in.Take<uint64_t>();
        std::memcpy(buf, &v, 8);
        fn->BarWrite(offset, absl::MakeConstSpan(buf, len));
        break;
      }
      case 5: {  // The driver writes guest memory (rings, buffers).
        const uint64_t at = in.Take<uint16_t>() & 0xfff8;
        const uint64_t v = in.Take<uint64_t>();
        Require(memory->WriteObj(GuestAddress(at), v).ok(), "guest write");
        break;
      }
      case 6:
        if (device->active && device->interrupt) device->interrupt(in.Take<uint8_t>() % 3);
        if (device->active && device->needs_reset && in.Take<uint8_t>() == 0x5a) {
          device->needs_reset();
        }
        device->fail_next = in.Take<uint8_t>() & 1;
        break;
      default:
        if (in.Take<uint8_t>() == 0xa5) {
          fn->Detach();
          detached = true;
          Require(!device->active, "Detach left the device active");
        }
        break;
    }
    // What was sent during the operation is in the table as it is now (a write that unmasks a
    // pending vector may have changed its message in the same access).
    if (!detached) record_table();
    for (const auto& msi : sent) {
      Require(programmed.count(msi) != 0, "an MSI the guest never programmed");
    }
    sent.clear();
    if (!detached) {
      const uint8_t status = fn->status();
      Require(!(status & virtio::kStatusDriverOk) || (status & virtio::kStatusFeaturesOk),
              "DRIVER_OK without FEATURES_OK");
    }
  }
}

}  // namespace
}  // namespace vmmkit::virtio_pci

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::virtio_pci::Run(data, size);
  return 0;
}
