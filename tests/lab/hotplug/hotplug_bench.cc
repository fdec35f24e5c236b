// hotplug_bench: the hotplug benchmark's driver, one program for both VMMs so that they are
// measured the same way: a long-lived control connection to each (as orchestration code holds one);
// CYCLES times, for each VMM in turn, add a vfio-pci device, wait until its guest has seen it,
// remove it (until the VMM says it is gone), wait until the guest has seen it go. Latencies are
// the control calls alone; each guest's console log says when it has seen the device come and go
// (lines from tests/lab/l2/hotplug_init.sh).
//
//   hotplug_bench 0000:01:00.0 20 grpc:/tmp/vmm.sock:/tmp/vmm.log qmp:/tmp/qmp.sock:/tmp/qemu.log
//     grpc: vmm's AddDevice / RemoveDevice;  qmp: QEMU's device_add / device_del + DEVICE_DELETED
//
// The VMMs take turns within every cycle (one device can be in one VMM at a time), and which goes
// first alternates from cycle to cycle: the lab's speed drifts by tens of percent over a minute
// (L0 is a shared machine running L1 under TCG), so measuring one VMM's cycles and then the
// other's compared two different machines. With two VMMs it also prints the paired ratios, the
// p50 over cycles of the first VMM's latency over the second's in the same cycle.
//
// Also measures each control channel's floor, 20 calls that do no device work: QMP query-status,
// or gRPC's own health check, each after the same pause as the device calls and taking turns as
// they do (a call after a pause wakes threads that a call right after another finds awake, and
// costs more). Prints, per VMM (KIND is grpc or qmp),
//   hotplug_bench: KIND add p50 X ms p99 Y ms / KIND first add Z ms /
//   KIND remove p50 X ms p99 Y ms / KIND floor p50 X ms p99 Y ms
// then `hotplug_bench: paired add ratio p50 R` and the same for remove; exits 1 on any error or
// timeout.
//
// Endurance (--sample=N:PID, one grpc VMM whose pid is PID): every N cycles, vmm's resources as
// GetVm counts them (DMA mappings, MSI routes, memory listeners, KVM memory slots, heap in use,
// fds, threads) and as /proc sees the process (RSS, mappings in /proc/PID/maps), one line each,
// taken with the device out (and once in cycle 1 with it in); at the end the growth from the
// first sample after cycle 0 to the last. --settle_ms=M replaces the 250 ms pause after each guest
// event.
//
//   hotplug_bench 0000:01:00.0 1000 grpc:/tmp/vmm.sock:/tmp/vmm.log --sample=100:1234
//   --settle_ms=20
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/vmm/v1/vmm.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr char kId[] = "hp0";

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "hotplug_bench: FAIL %s\n", what.c_str());
  std::exit(1);
}

// One VMM's control connection.
class Control {
 public:
  virtual ~Control() = default;
  virtual void Add(const std::string& bdf) = 0;
  virtual void Remove() = 0;  // Returns once the VMM reports the device gone.
  virtual void Floor() = 0;   // A call that does no device work.
  // What the VMM says it holds, as name/value pairs (gRPC only; empty otherwise).
  virtual std::vector<std::pair<std::string, uint64_t>> Resources() { return {}; }
};

class Qmp : public Control {
 public:
  explicit Qmp(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      Fail("connect " + path);
    }
    ReadLine();  // The greeting.
    Execute(R"({"execute": "qmp_capabilities"})");
  }
  void Add(const std::string& bdf) override {
    Execute(R"({"execute": "device_add", "arguments": {"driver": "vfio-pci", "host": ")" + bdf +
            R"(", "id": ")" + kId + R"("}})");
  }
  void Remove() override {
    Execute(std::string(R"({"execute": "device_del", "arguments": {"id": ")") + kId + R"("}})");
    WaitEvent("DEVICE_DELETED", std::string("\"") + kId + "\"");
  }
  void Floor() override { Execute(R"({"execute": "query-status"})"); }

 private:
  // Sends a command; returns its reply line (events that arrive meanwhile are kept).
  std::string Execute(const std::string& json) {
    const std::string line = json + "\n";
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      Fail("write to QMP");
    }
    for (;;) {
      std::string reply = ReadLine();
      if (reply.find("\"event\"") != std::string::npos) {
        events_.push_back(reply);
        continue;
      }
      if (reply.find("\"error\"") != std::string::npos) Fail(json + " -> " + reply);
      return reply;
    }
  }
  void WaitEvent(const std::string& name, const std::string& detail) {
    for (;;) {
      for (auto it = events_.begin(); it != events_.end(); ++it) {
        if (it->find(name) != std::string::npos && it->find(detail) != std::string::npos) {
          events_.erase(it);
          return;
        }
      }
      events_.push_back(ReadLine());
    }
  }
  std::string ReadLine() {
    for (;;) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      char chunk[4096];
      const ssize_t n = ::read(fd_, chunk, sizeof(chunk));
      if (n <= 0) Fail("QMP connection closed");
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  int fd_ = -1;
  std::string buffer_;
  std::vector<std::string> events_;
};

class Grpc : public Control {
 public:
  explicit Grpc(const std::string& path)
      : channel_(grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials())),
        vm_(vmmkit::vmm::v1::VmService::NewStub(channel_)),
        health_(grpc::health::v1::Health::NewStub(channel_)) {
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      Fail("connect " + path);
    }
  }
  void Add(const std::string& bdf) override {
    vmmkit::vmm::v1::AddDeviceRequest req;
    req.set_id(kId);
    req.set_host(bdf);
    vmmkit::vmm::v1::Device out;
    Check("AddDevice", vm_->AddDevice(Context().get(), req, &out));
  }
  void Remove() override {
    vmmkit::vmm::v1::RemoveDeviceRequest req;
    req.set_id(kId);
    vmmkit::vmm::v1::RemoveDeviceResponse out;
    Check("RemoveDevice", vm_->RemoveDevice(Context().get(), req, &out));
  }
  std::vector<std::pair<std::string, uint64_t>> Resources() override {
    vmmkit::vmm::v1::Vm vm;
    Check("GetVm", vm_->GetVm(Context().get(), {}, &vm));
    const vmmkit::vmm::v1::Resources& r = vm.resources();
    return {{"fds", r.open_fds()},
            {"threads", r.threads()},
            {"dma_mappings", r.dma_mappings()},
            {"dma_mib", r.dma_mapped_bytes() >> 20},
            {"msi_routes", r.msi_routes()},
            {"memory_listeners", r.memory_listeners()},
            {"kvm_slots", r.kvm_memory_slots()},
            {"heap_kib", r.heap_in_use_bytes() >> 10}};
  }
  void Floor() override {
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse out;
    Check("Health.Check", health_->Check(Context().get(), req, &out));
  }

 private:
  static std::unique_ptr<grpc::ClientContext> Context() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return ctx;
  }
  static void Check(const std::string& what, const grpc::Status& s) {
    if (!s.ok()) Fail(what + ": " + s.error_message());
  }
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<vmmkit::vmm::v1::VmService::Stub> vm_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

bool WaitForLog(const std::string& path, const std::string& needle, int seconds) {
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < end) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().find(needle) != std::string::npos) return true;
    ::usleep(20000);
  }
  return false;
}

// The guest reports a device as soon as it shows in sysfs, while its kernel is still setting it up
// (or, after a removal, while its watcher restarts): the next call waits until that is over, as
// orchestration code does not remove a device the moment it appears, so that it is not measured
// sharing L1's one CPU with the guest's leftover work. The same for both VMMs.
int g_settle_ms = 250;
void Settle() { ::usleep(static_cast<useconds_t>(g_settle_ms) * 1000); }

// A process's resident memory (KiB) and its number of mappings, from /proc.
std::vector<std::pair<std::string, uint64_t>> ProcessResources(int pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  uint64_t rss = 0, maps = 0;
  std::ifstream status(dir + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  std::ifstream mappings(dir + "/maps");
  for (std::string line; std::getline(mappings, line);) ++maps;
  return {{"rss_kib", rss}, {"maps", maps}};
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(static_cast<double>(v.size()) * p / 100.0 + 0.999);
  if (i < 1) i = 1;
  return v[std::min(i, v.size()) - 1];
}

void Print(const std::string& what, const std::vector<double>& v) {
  std::printf("hotplug_bench: %s p50 %.1f ms p99 %.1f ms\n", what.c_str(), Percentile(v, 50),
              Percentile(v, 99));
}

struct Side {
  std::string kind;  // grpc or qmp
  std::unique_ptr<Control> control;
  std::string guest_log;
  std::vector<double> add, remove, floor;
};

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: hotplug_bench HOST_BDF CYCLES grpc|qmp:SOCKET:GUEST_LOG [grpc|qmp:...]\n"
               "       [--sample=N:PID] [--settle_ms=M]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int sample_every = 0, sample_pid = 0;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--sample=", 0) == 0) {
      if (std::sscanf(a.c_str(), "--sample=%d:%d", &sample_every, &sample_pid) != 2 ||
          sample_every < 1 || sample_pid < 1) {
        Usage();
      }
    } else if (a.rfind("--settle_ms=", 0) == 0) {
      g_settle_ms = std::atoi(a.c_str() + 12);
      if (g_settle_ms < 0) Usage();
    } else {
      args.push_back(a);
    }
  }
  if (args.size() < 3 || args.size() > 4) Usage();
  const std::string bdf = args[0];
  const int cycles = std::atoi(args[1].c_str());
  if (cycles < 1) Usage();
  std::vector<Side> sides;
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string spec = args[i];
    const size_t a = spec.find(':'), b = spec.rfind(':');
    if (a == std::string::npos || a == b) Usage();
    Side side;
    side.kind = spec.substr(0, a);
    const std::string socket = spec.substr(a + 1, b - a - 1);
    side.guest_log = spec.substr(b + 1);
    if (side.kind == "qmp") {
      side.control = std::make_unique<Qmp>(socket);
    } else if (side.kind == "grpc") {
      side.control = std::make_unique<Grpc>(socket);
    } else {
      Usage();
    }
    sides.push_back(std::move(side));
  }
  if (sample_every > 0 && (sides.size() != 1 || sides[0].kind != "grpc")) Usage();
  auto timed = [](const auto& call) {
    const auto t0 = Clock::now();
    call();
    return Ms(Clock::now() - t0);
  };
  // A channel's first calls cost more than the rest (QMP's capabilities handshake is done by the
  // constructor; gRPC's first call over a connected channel took 80-100 ms here): not the device
  // work being measured, so done before it, with calls that do no device work.
  for (Side& side : sides) {
    for (int i = 0; i < 3; ++i) side.control->Floor();
  }
  // Endurance samples: each a list of name/value pairs, printed as taken.
  std::vector<std::pair<int, std::vector<std::pair<std::string, uint64_t>>>> samples;
  auto take_sample = [&](const std::string& label) {
    std::vector<std::pair<std::string, uint64_t>> values = sides[0].control->Resources();
    for (auto& v : ProcessResources(sample_pid)) values.push_back(v);
    std::printf("hotplug_bench: sample %s:", label.c_str());
    for (const auto& [name, value] : values) {
      std::printf(" %s %llu", name.c_str(), static_cast<unsigned long long>(value));
    }
    std::printf("\n");
    std::fflush(stdout);
    return values;
  };
  auto sample = [&](int cycle) {
    samples.emplace_back(cycle, take_sample("after cycle " + std::to_string(cycle)));
  };
  if (sample_every > 0) sample(0);
  for (int c = 1; c <= cycles; ++c) {
    for (size_t turn = 0; turn < sides.size(); ++turn) {
      Side& side = sides[(turn + static_cast<size_t>(c) - 1) % sides.size()];
      const std::string cycle = " (" + std::to_string(c) + ")";
      side.add.push_back(timed([&] { side.control->Add(bdf); }));
      if (!WaitForLog(side.guest_log, "L2: edu appeared" + cycle, 60)) {
        Fail(side.kind + ": the guest did not see the device in cycle " + std::to_string(c));
      }
      Settle();
      // Once, what the device holds while it is in (its BARs' slots, routes, mappings): the
      // counters the samples show flat can move.
      if (sample_every > 0 && c == 1) take_sample("with the device in, cycle 1");
      side.remove.push_back(timed([&] { side.control->Remove(); }));
      if (!WaitForLog(side.guest_log, "L2: edu gone" + cycle, 60)) {
        Fail(side.kind + ": the guest did not see the device go in cycle " + std::to_string(c));
      }
      Settle();
    }
    if (sample_every > 0 && c % sample_every == 0) sample(c);
  }
  if (samples.size() >= 3) {
    // From the first sample after a full round of cycles (the first add sets up what stays: the
    // container, pinned guest RAM) to the last.
    const auto& [from_cycle, from] = samples[1];
    const auto& [to_cycle, to] = samples.back();
    std::printf("hotplug_bench: growth from cycle %d to cycle %d:", from_cycle, to_cycle);
    for (size_t i = 0; i < from.size(); ++i) {
      std::printf(" %s %+lld", from[i].first.c_str(),
                  static_cast<long long>(to[i].second) - static_cast<long long>(from[i].second));
    }
    std::printf("\n");
  }
  for (int i = 0; i < 20; ++i) {
    for (Side& side : sides) {
      Settle();
      side.floor.push_back(timed([&] { side.control->Floor(); }));
    }
  }
  for (const Side& side : sides) {
    std::printf("hotplug_bench: %s, %d cycles\n", side.kind.c_str(), cycles);
    Print(side.kind + " add", side.add);
    // The first add is most of p99: it also sets up the VMM's VFIO container, and faults in and
    // pins the guest RAM the guest never touched (unless it was allocated at start).
    std::printf("hotplug_bench: %s first add %.1f ms\n", side.kind.c_str(), side.add.front());
    Print(side.kind + " remove", side.remove);
    Print(side.kind + " floor", side.floor);
  }
  if (sides.size() == 2) {
    auto paired = [&](std::vector<double> Side::*what) {
      std::vector<double> r;
      for (size_t c = 0; c < (sides[0].*what).size(); ++c) {
        r.push_back((sides[0].*what)[c] / (sides[1].*what)[c]);
      }
      return Percentile(r, 50);
    };
    std::printf("hotplug_bench: paired add ratio p50 %.3f\n", paired(&Side::add));
    std::printf("hotplug_bench: paired remove ratio p50 %.3f\n", paired(&Side::remove));
  }
  return 0;
}
