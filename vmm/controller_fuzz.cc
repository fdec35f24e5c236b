// Fuzzes the control plane's request handling below the transport: any sequence of the VmService
// calls (GetVm, Pause, Resume, Shutdown, ListDevices, GetDevice, AddDevice, RemoveDevice, Watch)
// with arbitrary ids, hosts, slots and timeouts, interleaved with what the VMM reports (started,
// a device the guest released), against a fake VM. Checked: every call returns one of the
// statuses the API specifies (never UNKNOWN or INTERNAL), and a VM that is stopping never runs
// again.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tools/testing/fuzz_input.h"
#include "vmm/controller.h"
#include "vmm/testing/fake_vm.h"

namespace vmmkit::vmm {
namespace {

void CheckStatus(const absl::Status& s) {
  if (IsSpecifiedStatus(s.code())) return;
  std::fprintf(stderr, "controller_fuzz: unspecified status %s\n", s.ToString().c_str());
  std::abort();
}

// A string from the fuzzer: short, with the characters ids and hosts are made of and some not.
std::string TakeString(fuzzing::FuzzInput& in) {
  static constexpr char kChars[] = "hp0:.-_/aZ9 \x01\xff";
  std::string s;
  const size_t len = in.Take<uint8_t>() % 40;
  for (size_t i = 0; i < len; ++i) s += kChars[in.Take<uint8_t>() % (sizeof(kChars) - 1)];
  return s;
}

void Run(const uint8_t* data, size_t size) {
  testing::FakeVm vm;
  testing::InlineLoop loop;
  VmController c(vm, loop);
  fuzzing::FuzzInput in(data, size);
  const std::string ids[] = {"hp0", "hp1", "com1", ""};
  const std::string hosts[] = {"0000:00:03.0", "00:04.0", "/sys/bus/pci/devices/0000:00:05.0",
                               "garbage"};
  bool stopped = false, started = false;
  for (int ops = 0; !in.done() && ops < 128; ++ops) {
    const uint8_t op = in.Take<uint8_t>() % 12;
    const bool fuzzy = in.Take<uint8_t>() & 1;
    const std::string id = fuzzy ? TakeString(in) : ids[in.Take<uint8_t>() % 4];
    switch (op) {
      case 0:
        CheckStatus(c.GetVm().status());
        break;
      case 1:
        CheckStatus(c.Pause().status());
        break;
      case 2:
        CheckStatus(c.Resume().status());
        break;
      case 3: {
        const absl::Duration timeout = absl::Milliseconds(in.Take<int32_t>());
        absl::StatusOr<VmState> s = c.Shutdown(in.Take<uint8_t>() & 1, timeout);
        CheckStatus(s.status());
        if (s.ok() && *s == VmState::kStopping) stopped = true;
        break;
      }
      case 4:
        CheckStatus(c.ListDevices().status());
        break;
      case 5:
        CheckStatus(c.GetDevice(id).status());
        break;
      case 6: {
        const std::string host = fuzzy ? TakeString(in) : hosts[in.Take<uint8_t>() % 4];
        CheckStatus(c.AddDevice(id, host, in.Take<uint8_t>() % 40).status());
        break;
      }
      case 7: {
        // A valid wait is kept short (1-16 ms: the fake guest never releases anything); the rest
        // are out of range (negative, or beyond the maximum). Zero would mean the 10 s default.
        const int32_t ms = in.Take<int32_t>();
        const absl::Duration timeout =
            (ms & 1) ? (ms < 0 ? absl::Milliseconds(ms)
                               : VmController::kMaxRemoveTimeout + absl::Milliseconds(ms))
                     : absl::Milliseconds(1 + ((ms >> 1) & 0xf));
        CheckStatus(c.RemoveDevice(id, timeout).status());
        break;
      }
      case 8: {
        absl::StatusOr<std::shared_ptr<EventStream>> w = c.Watch();
        CheckStatus(w.status());
        break;
      }
      case 9:
        // The VMM reports its vCPUs started once, before anything can stop it.
        if (!started && !stopped) c.OnStarted();
        started = true;
        break;
      case 10: {
        // The guest released a device (the VMM reports it as removed).
        auto it = vm.hotplugged.find(id);
        if (it != vm.hotplugged.end()) {
          VmEvent::DeviceChanged e{VmEvent::DeviceChanged::Type::kRemoved, it->second, ""};
          vm.hotplugged.erase(it);
          c.OnDeviceEvent(e);
        }
        break;
      }
      default:
        CheckStatus(c.GetVm().status());
        break;
    }
    if (stopped) {
      absl::StatusOr<VmStatus> s = c.GetVm();
      fuzzing::Require(!s.ok() || s->state == VmState::kStopping, "a stopping VM that runs again");
    }
  }
}

}  // namespace
}  // namespace vmmkit::vmm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::vmm::Run(data, size);
  return 0;
}
