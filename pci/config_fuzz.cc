// Fuzzes PCI configuration access as a guest makes it: any sequence of reads and writes of 1, 2,
// 4 or 8 bytes at any offset of the mechanism #1 ports (CONFIG_ADDRESS, CONFIG_DATA) and of the
// ECAM window (and just past both), against a root bus with a device in slot 3 that stores what is
// written to it. Checked against a model kept here from the PCI rules: a device only ever sees a
// dword-aligned register below 4096 and a non-empty byte mask; every access that is naturally
// placed within one dword of function 00:03.0 reads back exactly the bytes written there; one to
// an empty slot, another function or bus, or that straddles a dword reads all-ones and changes
// nothing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "devices/bus.h"
#include "pci/root_bus.h"

namespace vmmkit::pci {
namespace {

constexpr uint64_t kIoBase = 0xcf8;
constexpr uint64_t kEcamBase = 0xe0000000;
constexpr uint64_t kEcamSize = 1 << 20;
constexpr uint8_t kSlot = 3;

// Stores its 4 KiB of configuration space; aborts on a call outside PciDevice's contract.
class StoringDevice : public PciDevice {
 public:
  uint32_t ConfigRead(uint16_t reg) override {
    Check(reg, 0xf);
    uint32_t v;
    std::memcpy(&v, &space_[reg], 4);
    return v;
  }
  void ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) override {
    Check(reg, byte_mask);
    for (int i = 0; i < 4; ++i) {
      if (byte_mask >> i & 1) space_[reg + i] = static_cast<uint8_t>(value >> (8 * i));
    }
  }

 private:
  static void Check(uint16_t reg, uint8_t byte_mask) {
    if (reg % 4 != 0 || reg >= 4096 || byte_mask == 0 || byte_mask > 0xf) std::abort();
  }
  uint8_t space_[4096] = {};
};

struct World {
  std::shared_ptr<PciRootBus> root = std::make_shared<PciRootBus>();
  devices::Bus pio{"pio"};
  devices::Bus mmio{"mmio"};
  uint8_t model[4096] = {};     // What slot 3's function 0 should hold.
  uint32_t config_address = 0;  // CONFIG_ADDRESS as the model sees it.
};

World& TheWorld() {
  static World* w = [] {
    auto* world = new World;
    if (!world->root->AddDevice(kSlot, std::make_shared<StoringDevice>()).ok() ||
        !world->pio.Insert(std::make_shared<PciConfigIo>(world->root), kIoBase, 8).ok() ||
        !world->mmio.Insert(std::make_shared<PciConfigMmio>(world->root), kEcamBase, kEcamSize)
             .ok()) {
      std::abort();
    }
    return world;
  }();
  return *w;
}

// Where the model says an access lands in slot 3's space: the register offset, or -1 for nowhere
// in it (another function, or a misplaced access). `other` is set for an access that reaches some
// other existing function (the host bridge), whose contents the model does not track.
int64_t Place(uint64_t bus, uint64_t slot, uint64_t function, uint64_t reg, size_t size,
              bool* other) {
  *other = false;
  if (size > 4 || (reg & 3) + size > 4) return -1;
  if (bus != 0 || function != 0) return -1;
  if (slot == 0) *other = true;
  return slot == kSlot ? static_cast<int64_t>(reg) : -1;
}

}  // namespace
}  // namespace vmmkit::pci

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmmkit::pci;  // NOLINT: a fuzz entry point outside the namespace.
  World& w = TheWorld();
  static constexpr size_t kSizes[] = {1, 2, 4, 8};
  for (size_t pos = 0; pos + 10 <= size; pos += 10) {
    const uint8_t op = data[pos];
    uint32_t where;
    std::memcpy(&where, data + pos + 1, 4);
    uint32_t value;
    std::memcpy(&value, data + pos + 5, 4);
    const size_t len = kSizes[op & 3];
    const bool write = op & 4;
    // Three times in four, aim at the first registers of 00:03.0, so that random inputs write and
    // read the same bytes back often: a CONFIG_ADDRESS that selects them, an ECAM offset in them.
    const bool aim = (op & 0x30) != 0;
    if (aim && (op & 8) && where % 10 == 1) value = 0x80000000u | kSlot << 11 | (value & 0x1c);
    if (aim && !(op & 8)) where = kSlot << 15 | (where & 0x1f);
    uint8_t buf[8];
    for (size_t i = 0; i < sizeof(buf); ++i) buf[i] = static_cast<uint8_t>(value >> (8 * (i % 4)));
    int64_t at = -1;
    bool other = false;
    bool claimed;
    if (op & 8) {  // Mechanism #1: offsets 0-7 of the ports, and a little outside.
      const uint64_t offset = where % 10;
      const uint64_t address = kIoBase - 1 + offset;
      if (!write) {
        claimed = w.pio.Read(address, absl::MakeSpan(buf, len));
      } else {
        claimed = w.pio.Write(address, absl::MakeConstSpan(buf, len));
      }
      const bool inside = address >= kIoBase && address + len <= kIoBase + 8;
      if (claimed != inside) std::abort();
      if (!inside) continue;
      const uint64_t port = address - kIoBase;
      if (port < 4) {
        if (write && port == 0 && len == 4) w.config_address = value;
        if (!write) {
          const bool is_address = port == 0 && len == 4;
          for (size_t i = 0; i < len; ++i) {
            const uint8_t want =
                is_address ? static_cast<uint8_t>(w.config_address >> (8 * i)) : 0xff;
            if (buf[i] != want) std::abort();
          }
        }
        continue;
      }
      const uint32_t a = w.config_address;
      if (a >> 31) {
        at =
            Place(a >> 16 & 0xff, a >> 11 & 0x1f, a >> 8 & 7, (a & 0xfc) + (port - 4), len, &other);
      }
    } else {  // ECAM, and a little past its end.
      const uint64_t offset = where % (kEcamSize + 16);
      const uint64_t address = kEcamBase + offset;
      if (!write) {
        claimed = w.mmio.Read(address, absl::MakeSpan(buf, len));
      } else {
        claimed = w.mmio.Write(address, absl::MakeConstSpan(buf, len));
      }
      const bool inside = offset + len <= kEcamSize;
      if (claimed != inside) std::abort();
      if (!inside) continue;
      at = Place(offset >> 20, offset >> 15 & 0x1f, offset >> 12 & 7, offset & 0xfff, len, &other);
    }
    if (write) {
      if (at >= 0) {
        for (size_t i = 0; i < len; ++i) w.model[at + static_cast<int64_t>(i)] = buf[i];
      }
    } else if (at >= 0) {
      for (size_t i = 0; i < len; ++i) {
        if (buf[i] != w.model[at + static_cast<int64_t>(i)]) std::abort();
      }
    } else if (!other) {
      for (size_t i = 0; i < len; ++i) {
        if (buf[i] != 0xff) std::abort();
      }
    }
  }
  return 0;
}
