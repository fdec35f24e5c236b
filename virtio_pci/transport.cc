#include "virtio_pci/transport.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace vmmkit::virtio_pci {
namespace {

constexpr uint16_t kVirtioVendor = 0x1af4;
constexpr uint16_t kModernDeviceBase = 0x1040;
constexpr uint8_t kCapVendor = 0x09;
// virtio_pci_cap.cfg_type.
constexpr uint8_t kCapCommon = 1, kCapNotify = 2, kCapIsr = 3, kCapDevice = 4, kCapPciCfg = 5;

// The common configuration's registers (virtio 1.x, struct virtio_pci_common_cfg).
enum Common : uint64_t {
  kDeviceFeatureSelect = 0x00,
  kDeviceFeature = 0x04,
  kDriverFeatureSelect = 0x08,
  kDriverFeature = 0x0c,
  kConfigMsixVector = 0x10,
  kNumQueues = 0x12,
  kDeviceStatus = 0x14,
  kConfigGeneration = 0x15,
  kQueueSelect = 0x16,
  kQueueSize = 0x18,
  kQueueMsixVector = 0x1a,
  kQueueEnable = 0x1c,
  kQueueNotifyOff = 0x1e,
  kQueueDesc = 0x20,
  kQueueDriver = 0x28,
  kQueueDevice = 0x30,
  kQueueNotifyData = 0x38,
  kQueueReset = 0x3a,
};

// Width of the register at `offset`, 0 for none; the 64-bit queue addresses are also reachable
// as two 32-bit halves (Linux writes them so).
size_t RegisterWidth(uint64_t offset) {
  switch (offset) {
    case kDeviceFeatureSelect:
    case kDeviceFeature:
    case kDriverFeatureSelect:
    case kDriverFeature:
      return 4;
    case kConfigMsixVector:
    case kNumQueues:
    case kQueueSelect:
    case kQueueSize:
    case kQueueMsixVector:
    case kQueueEnable:
    case kQueueNotifyOff:
    case kQueueNotifyData:
    case kQueueReset:
      return 2;
    case kDeviceStatus:
    case kConfigGeneration:
      return 1;
    case kQueueDesc:
    case kQueueDriver:
    case kQueueDevice:
      return 8;
    default:
      return 0;
  }
}

// A virtio vendor capability's body (after ID and next): cap_len, cfg_type, bar, id, padding,
// offset, length, and `extra` (the notify multiplier, or the PCI_CFG data).
std::vector<uint8_t> CapBody(uint8_t type, uint32_t offset, uint32_t length,
                             std::optional<uint32_t> extra = std::nullopt) {
  std::vector<uint8_t> body(extra ? 18 : 14, 0);
  body[0] = static_cast<uint8_t>(body.size() + 2);
  body[1] = type;
  body[2] = 0;  // BAR 0.
  std::memcpy(&body[6], &offset, 4);
  std::memcpy(&body[10], &length, 4);
  if (extra) std::memcpy(&body[14], &*extra, 4);
  return body;
}

uint64_t LoadLe(absl::Span<const uint8_t> data) {
  uint64_t v = 0;
  std::memcpy(&v, data.data(), std::min<size_t>(data.size(), 8));
  return v;
}
void StoreLe(absl::Span<uint8_t> data, uint64_t v) {
  std::memcpy(data.data(), &v, std::min<size_t>(data.size(), 8));
}

}  // namespace

absl::StatusOr<std::shared_ptr<VirtioPciFunction>> VirtioPciFunction::Create(
    std::shared_ptr<VirtioDevice> device, SendMsi send_msi) {
  if (device == nullptr) return absl::InvalidArgumentError("virtio-pci: no device");
  const uint32_t queues = device->num_queues(), size = device->max_queue_size();
  if (queues == 0 || queues > kMaxQueues) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-pci: ", queues, " queues; a device has 1 to ", kMaxQueues));
  }
  if (size == 0 || size > virtio::SplitQueue::kMaxSize || (size & (size - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-pci: queue size ", size, " is not a power of two up to 32768"));
  }
  if (device->config_size() > kDeviceSize) {
    return absl::InvalidArgumentError(absl::StrCat("virtio-pci: a device configuration of ",
                                                   device->config_size(), " bytes (at most ",
                                                   kDeviceSize, ")"));
  }
  // One vector per queue and one for configuration changes.
  const uint16_t vectors = static_cast<uint16_t>(queues + 1);
  std::shared_ptr<VirtioPciFunction> fn(
      new VirtioPciFunction(std::move(device), std::move(send_msi), vectors));
  MutexLock lock(fn->mu_);
  if (absl::Status s = fn->BuildConfigSpace(); !s.ok()) return s;
  return fn;
}

VirtioPciFunction::VirtioPciFunction(std::shared_ptr<VirtioDevice> device, SendMsi send_msi,
                                     uint16_t vectors)
    : device_(std::move(device)),
      send_msi_(std::move(send_msi)),
      vectors_(vectors),
      msix_(vectors,
            [this](uint16_t index, const pci::MsixVector& v) { OnVectorChanged(index, v); }),
      config_({.vendor = kVirtioVendor,
               .device = static_cast<uint16_t>(kModernDeviceBase + device_->device_type()),
               .class_code = device_->class_code(),
               .revision = 1,
               .subsystem_vendor = kVirtioVendor,
               .subsystem = 0x40,
               .interrupt_pin = 0}),
      status_(device_->device_features() | virtio::kFeatureVersion1 | virtio::kFeatureEventIdx |
              virtio::kFeatureIndirectDesc),
      queues_(device_->num_queues(), QueueConfig{.size = device_->max_queue_size()}),
      queue_vectors_(device_->num_queues(), kNoVector),
      pending_(vectors, false) {}

absl::Status VirtioPciFunction::BuildConfigSpace() {
  if (absl::Status s = config_.AddBar({.index = 0, .size = kBarSize, .is64 = true}); !s.ok()) {
    return s;
  }
  std::vector<std::vector<uint8_t>> caps = {
      CapBody(kCapCommon, kCommonOffset, kCommonSize),
      CapBody(kCapNotify, kNotifyOffset,
              static_cast<uint32_t>(kNotifyMultiplier * device_->num_queues()),
              static_cast<uint32_t>(kNotifyMultiplier)),
      CapBody(kCapIsr, kIsrOffset, kIsrSize)};
  if (device_->config_size() > 0) {
    caps.push_back(CapBody(kCapDevice, kDeviceOffset, device_->config_size()));
  }
  absl::StatusOr<uint8_t> at;
  for (const std::vector<uint8_t>& body : caps) {
    at = config_.AddCapability(kCapVendor, body);
    if (!at.ok()) return at.status();
  }
  // The access window: the driver writes bar, offset and length, then reads or writes data.
  std::vector<uint8_t> writable(18, 0);
  writable[2] = 0xff;
  std::fill(writable.begin() + 6, writable.end(), 0xff);
  at = config_.AddCapability(kCapVendor, CapBody(kCapPciCfg, 0, 0, 0), writable);
  if (!at.ok()) return at.status();
  pci_cfg_ = *at;
  return config_
      .AddMsix({.vectors = vectors_,
                .table_bar = 0,
                .table_offset = static_cast<uint32_t>(kMsixTableOffset),
                .pba_bar = 0,
                .pba_offset = static_cast<uint32_t>(kMsixPbaOffset)})
      .status();
}

uint32_t VirtioPciFunction::ConfigRead(uint16_t reg) {
  Action action;
  uint32_t value;
  {
    MutexLock lock(mu_);
    if (detached_) return 0xffffffff;
    if (pci_cfg_ != 0 && reg == pci_cfg_ + 16) {
      PciCfgAccess(/*write=*/false, value, action);
    } else {
      value = config_.Read(reg);
    }
  }
  Run(std::move(action));
  return value;
}

void VirtioPciFunction::ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) {
  Action action;
  {
    MutexLock lock(mu_);
    if (detached_) return;
    if (pci_cfg_ != 0 && reg == pci_cfg_ + 16) {
      if (byte_mask != 0) PciCfgAccess(/*write=*/true, value, action);
    } else {
      const pci::ConfigSpace::Change change = config_.Write(reg, value, byte_mask);
      if (change.msix) {
        MutexLock irq(irq_mu_);
        msix_enabled_ = config_.msix_enabled();
        function_mask_ = config_.msix_function_mask();
        DeliverPendingLocked();
      }
    }
  }
  Run(std::move(action));
}

void VirtioPciFunction::PciCfgAccess(bool write, uint32_t& value, Action& action) {
  const uint32_t bar = config_.Read(static_cast<uint16_t>(pci_cfg_ + 4)) & 0xff;
  const uint32_t offset = config_.Read(static_cast<uint16_t>(pci_cfg_ + 8));
  const uint32_t length = config_.Read(static_cast<uint16_t>(pci_cfg_ + 12));
  const bool valid = bar == 0 && (length == 1 || length == 2 || length == 4) &&
                     offset % length == 0 && offset + uint64_t{length} <= kBarSize;
  uint8_t bytes[4] = {};
  if (!valid) {
    if (!write) value = 0;
    return;
  }
  // The data is pci_cfg_data[0 .. length - 1].
  if (write) {
    std::memcpy(bytes, &value, 4);
    BarAccess(/*write=*/true, offset, absl::MakeSpan(bytes, length), action);
  } else {
    BarAccess(/*write=*/false, offset, absl::MakeSpan(bytes, length), action);
    value = 0;
    std::memcpy(&value, bytes, 4);
  }
}

absl::Status VirtioPciFunction::PlaceBars(
    const std::function<absl::StatusOr<uint64_t>(const pci::Bar&)>& allocate) {
  absl::StatusOr<uint64_t> address = allocate({.index = 0, .size = kBarSize, .is64 = true});
  if (!address.ok()) return address.status();
  MutexLock lock(mu_);
  config_.SetBarAddress(0, *address);
  return absl::OkStatus();
}

std::string VirtioPciFunction::Describe() {
  return absl::StrCat("virtio-pci type ", device_->device_type(), ", ", device_->num_queues(),
                      " queue(s), MSI-X ", vectors_, " vectors");
}

void VirtioPciFunction::Detach() {
  bool was_active;
  {
    MutexLock lock(mu_);
    if (detached_) return;
    detached_ = true;
    ++epoch_;
    was_active = active_;
    active_ = false;
  }
  if (was_active) device_->Reset();
}

std::optional<uint64_t> VirtioPciFunction::bar_address() {
  MutexLock lock(mu_);
  return config_.DecodedBarAddress(0);
}

std::vector<VirtioPciFunction::QueueInterrupt> VirtioPciFunction::QueueInterrupts() {
  MutexLock irq(irq_mu_);
  std::vector<QueueInterrupt> out(queue_vectors_.size());
  for (size_t q = 0; q < out.size(); ++q) {
    const uint16_t vector = queue_vectors_[q];
    if (!msix_enabled_ || vector == kNoVector || vector >= vectors_) continue;
    const pci::MsixVector v = msix_.vector(vector);
    out[q] = {.routable = true,
              .masked = v.masked || function_mask_,
              .address = v.address,
              .data = v.data};
  }
  return out;
}

uint8_t VirtioPciFunction::status() {
  MutexLock lock(mu_);
  return status_.status();
}

void VirtioPciFunction::BarRead(uint64_t offset, absl::Span<uint8_t> data) {
  Action action;
  {
    MutexLock lock(mu_);
    if (detached_) {
      std::fill(data.begin(), data.end(), 0xff);
      return;
    }
    BarAccess(/*write=*/false, offset, data, action);
  }
  Run(std::move(action));
}

void VirtioPciFunction::BarWrite(uint64_t offset, absl::Span<const uint8_t> data) {
  uint8_t copy[8] = {};
  const size_t len = std::min<size_t>(data.size(), 8);
  std::memcpy(copy, data.data(), len);
  Action action;
  {
    MutexLock lock(mu_);
    if (detached_) return;
    BarAccess(/*write=*/true, offset, absl::MakeSpan(copy, len), action);
  }
  Run(std::move(action));
}

void VirtioPciFunction::BarAccess(bool write, uint64_t offset, absl::Span<uint8_t> data,
                                  Action& action) {
  const size_t len = data.size();
  if (!write) std::fill(data.begin(), data.end(), 0);
  if (len == 0 || len > 8 || offset >= kBarSize || len > kBarSize - offset) return;
  if (offset < kCommonOffset + kCommonSize) {
    if (write) {
      CommonWrite(offset, len, LoadLe(data), action);
    } else {
      StoreLe(data, CommonRead(offset, len));
    }
  } else if (offset >= kIsrOffset && offset < kIsrOffset + kIsrSize) {
    if (!write && offset == kIsrOffset) {
      // Reading the ISR clears it (and so deasserts INTx, had the device one).
      MutexLock irq(irq_mu_);
      data[0] = isr_;
      isr_ = 0;
    }
  } else if (offset >= kDeviceOffset && offset < kDeviceOffset + kDeviceSize) {
    const uint64_t off = offset - kDeviceOffset;
    if (off + len > device_->config_size()) return;
    if (write) {
      device_->WriteConfig(static_cast<uint32_t>(off), data);
    } else {
      device_->ReadConfig(static_cast<uint32_t>(off), data);
    }
  } else if (offset >= kNotifyOffset &&
             offset < kNotifyOffset + kNotifyMultiplier * device_->num_queues()) {
    // The driver writes the queue's index (2 bytes) at the queue's notify address.
    if (write && (offset - kNotifyOffset) % kNotifyMultiplier == 0 && active_) {
      action.notify = static_cast<uint16_t>((offset - kNotifyOffset) / kNotifyMultiplier);
    }
  } else if (offset >= kMsixTableOffset &&
             offset < kMsixTableOffset + pci::MsixTable::kEntrySize * vectors_) {
    if (write) {
      msix_.WriteTable(offset - kMsixTableOffset, data);
    } else {
      msix_.ReadTable(offset - kMsixTableOffset, data);
    }
  } else if (offset >= kMsixPbaOffset && offset < kMsixPbaOffset + 8 * ((vectors_ + 63) / 64)) {
    if (!write) msix_.ReadPba(offset - kMsixPbaOffset, data);
  }
}

uint64_t VirtioPciFunction::CommonRead(uint64_t offset, size_t len) {
  // A 64-bit register's halves.
  uint64_t reg = offset;
  unsigned shift = 0;
  if (RegisterWidth(offset) == 0 && RegisterWidth(offset - 4) == 8) {
    reg = offset - 4;
    shift = 32;
  }
  const size_t width = RegisterWidth(reg);
  if (width == 0 || (len != width && !(width == 8 && len == 4))) return 0;
  if (shift != 0 && len != 4) return 0;
  QueueConfig* q = queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
  uint64_t v = 0;
  switch (reg) {
    case kDeviceFeatureSelect:
      v = device_feature_select_;
      break;
    case kDeviceFeature:
      v = status_.OfferedWord(device_feature_select_);
      break;
    case kDriverFeatureSelect:
      v = driver_feature_select_;
      break;
    case kDriverFeature:
      v = status_.AcceptedWord(driver_feature_select_);
      break;
    case kConfigMsixVector: {
      MutexLock irq(irq_mu_);
      v = config_vector_;
      break;
    }
    case kNumQueues:
      v = queues_.size();
      break;
    case kDeviceStatus:
      v = status_.status();
      break;
    case kConfigGeneration:
      v = status_.config_generation();
      break;
    case kQueueSelect:
      v = queue_select_;
      break;
    case kQueueSize:
      v = q ? q->size : 0;  // 0: no such queue.
      break;
    case kQueueMsixVector:
      v = q ? q->vector : kNoVector;
      break;
    case kQueueEnable:
      v = q && q->enabled;
      break;
    case kQueueNotifyOff:
      v = q ? queue_select_ : 0;
      break;
    case kQueueDesc:
      v = q ? q->desc : 0;
      break;
    case kQueueDriver:
      v = q ? q->driver : 0;
      break;
    case kQueueDevice:
      v = q ? q->device : 0;
      break;
    default:
      break;
  }
  return v >> shift;
}

void VirtioPciFunction::CommonWrite(uint64_t offset, size_t len, uint64_t value, Action& action) {
  uint64_t reg = offset;
  bool high = false;
  if (RegisterWidth(offset) == 0 && RegisterWidth(offset - 4) == 8) {
    reg = offset - 4;
    high = true;
  }
  const size_t width = RegisterWidth(reg);
  if (width == 0 || (len != width && !(width == 8 && len == 4))) return;
  if (high && len != 4) return;
  QueueConfig* q = queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
  // A queue's configuration is the driver's until it enables the queue.
  QueueConfig* writable_q = q != nullptr && !q->enabled && !status_.driver_ok() ? q : nullptr;
  const auto set_address = [&](uint64_t& field) {
    if (len == 8) {
      field = value;
    } else if (high) {
      field = (field & 0xffffffff) | (value << 32);
    } else {
      field = (field & ~uint64_t{0xffffffff}) | (value & 0xffffffff);
    }
  };
  // A vector the table has, or NO_VECTOR (which the driver reads back as the mapping's failure).
  const auto vector = [&](uint64_t v) {
    return v < vectors_ ? static_cast<uint16_t>(v) : kNoVector;
  };
  switch (reg) {
    case kDeviceFeatureSelect:
      device_feature_select_ = static_cast<uint32_t>(value);
      break;
    case kDriverFeatureSelect:
      driver_feature_select_ = static_cast<uint32_t>(value);
      break;
    case kDriverFeature:
      status_.AcceptWord(driver_feature_select_, static_cast<uint32_t>(value));
      break;
    case kConfigMsixVector: {
      MutexLock irq(irq_mu_);
      config_vector_ = vector(value);
      break;
    }
    case kDeviceStatus:
      switch (status_.WriteStatus(static_cast<uint8_t>(value))) {
        case virtio::StatusEvent::kReset:
          action.reset = active_;
          ResetLocked();
          break;
        case virtio::StatusEvent::kDriverOk:
          DriverOk(action);
          break;
        default:
          break;
      }
      break;
    case kQueueSelect:
      queue_select_ = static_cast<uint16_t>(value);
      break;
    case kQueueSize:
      if (writable_q) writable_q->size = static_cast<uint16_t>(value);
      break;
    case kQueueMsixVector:
      if (q) {
        q->vector = vector(value);
        MutexLock irq(irq_mu_);
        queue_vectors_[queue_select_] = q->vector;
      }
      break;
    case kQueueEnable:
      if (writable_q && value == 1) writable_q->enabled = true;
      break;
    case kQueueDesc:
      if (writable_q) set_address(writable_q->desc);
      break;
    case kQueueDriver:
      if (writable_q) set_address(writable_q->driver);
      break;
    case kQueueDevice:
      if (writable_q) set_address(writable_q->device);
      break;
    default:
      break;  // Read-only, or not offered (notify data, queue reset).
  }
}

void VirtioPciFunction::DriverOk(Action& action) {
  std::vector<std::optional<virtio::SplitQueue>> queues(queues_.size());
  for (size_t i = 0; i < queues_.size(); ++i) {
    const QueueConfig& c = queues_[i];
    if (!c.enabled) continue;
    absl::StatusOr<virtio::SplitQueue> q = absl::InvalidArgumentError("over the maximum size");
    if (c.size <= device_->max_queue_size()) {
      q = virtio::SplitQueue::Create({.size = c.size,
                                      .desc = Iova(c.desc),
                                      .avail = Iova(c.driver),
                                      .used = Iova(c.device),
                                      .event_idx = status_.Accepted(virtio::kFeatureEventIdx),
                                      .indirect = status_.Accepted(virtio::kFeatureIndirectDesc)});
    }
    if (!q.ok()) {
      // The driver set the queue up wrong: the device cannot start.
      action.config_irq = status_.NeedsReset();
      return;
    }
    queues[i] = *q;
  }
  action.activate = true;
  action.epoch = epoch_;
  action.features = status_.accepted();
  action.queues = std::move(queues);
}

void VirtioPciFunction::ResetLocked() {
  active_ = false;
  ++epoch_;
  device_feature_select_ = driver_feature_select_ = 0;
  queue_select_ = 0;
  for (QueueConfig& q : queues_) q = QueueConfig{.size = device_->max_queue_size()};
  MutexLock irq(irq_mu_);
  isr_ = 0;
  config_vector_ = kNoVector;
  std::fill(queue_vectors_.begin(), queue_vectors_.end(), kNoVector);
}

void VirtioPciFunction::Run(Action action) {
  if (action.reset) device_->Reset();
  if (action.activate) {
    std::weak_ptr<VirtioPciFunction> self = weak_from_this();
    const uint64_t epoch = action.epoch;
    absl::Status s = device_->Activate({.features = action.features,
                                        .queues = std::move(action.queues),
                                        .interrupt =
                                            [self](uint16_t queue) {
                                              if (auto fn = self.lock()) fn->Signal(queue);
                                            },
                                        .needs_reset =
                                            [self, epoch] {
                                              if (auto fn = self.lock()) fn->OnNeedsReset(epoch);
                                            }});
    bool undo = false;
    {
      MutexLock lock(mu_);
      if (!s.ok()) {
        action.config_irq = status_.NeedsReset();
      } else if (epoch_ != action.epoch) {
        undo = true;  // Reset or detached while the device started: it stops again.
      } else {
        active_ = true;
      }
    }
    if (undo) device_->Reset();
  }
  if (action.notify) device_->QueueNotify(*action.notify);
  if (action.config_irq) Signal(kConfigInterrupt);
}

void VirtioPciFunction::OnNeedsReset(uint64_t epoch) {
  bool tell;
  {
    MutexLock lock(mu_);
    if (epoch != epoch_ || !active_) return;  // From a device life that has ended.
    tell = status_.NeedsReset();
  }
  if (tell) Signal(kConfigInterrupt);
}

void VirtioPciFunction::Signal(uint16_t queue) {
  MutexLock irq(irq_mu_);
  uint16_t vector;
  if (queue == kConfigInterrupt) {
    isr_ |= 2;
    vector = config_vector_;
  } else {
    if (queue >= queue_vectors_.size()) return;
    isr_ |= 1;
    vector = queue_vectors_[queue];
  }
  if (vector == kNoVector || vector >= vectors_ || !msix_enabled_) return;
  const pci::MsixVector v = msix_.vector(vector);
  if (v.masked || function_mask_) {
    pending_[vector] = true;
    msix_.SetPending(vector, true);
    return;
  }
  if (send_msi_) send_msi_(v.address, v.data);
}

void VirtioPciFunction::OnVectorChanged(uint16_t index, const pci::MsixVector& v) {
  MutexLock irq(irq_mu_);
  if (v.masked || !msix_enabled_ || function_mask_ || index >= vectors_ || !pending_[index]) {
    return;
  }
  pending_[index] = false;
  msix_.SetPending(index, false);
  if (send_msi_) send_msi_(v.address, v.data);
}

void VirtioPciFunction::DeliverPendingLocked() {
  if (!msix_enabled_ || function_mask_) return;
  for (uint16_t i = 0; i < vectors_; ++i) {
    if (!pending_[i]) continue;
    const pci::MsixVector v = msix_.vector(i);
    if (v.masked) continue;
    pending_[i] = false;
    msix_.SetPending(i, false);
    if (send_msi_) send_msi_(v.address, v.data);
  }
}

}  // namespace vmmkit::virtio_pci
