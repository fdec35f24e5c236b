// qmp_hotplug: the QEMU side of the hotplug benchmark. Drives a running QEMU through QMP (its
// JSON control socket): CYCLES times device_add of a vfio-pci device, wait until the guest has
// seen it, device_del, wait for DEVICE_DELETED (QEMU's "the guest released it and it is gone").
// Latencies are the QMP calls alone, as vmmctl --time measures vmm's RPCs; the guest's console
// log says when it has seen the device come and go (lines from tests/lab/l2/hotplug_init.sh).
//
//   qmp_hotplug /tmp/qmp.sock 0000:01:00.0 20 /tmp/guest.log
//
// Prints "qmp_hotplug: device_add p50 X ms p99 Y ms" and the same for device_del; exit 1 on any
// QMP error or timeout.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "qmp_hotplug: FAIL %s\n", what.c_str());
  std::exit(1);
}

class Qmp {
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

 private:
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

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(static_cast<double>(v.size()) * p / 100.0 + 0.999);
  if (i < 1) i = 1;
  return v[std::min(i, v.size()) - 1];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: qmp_hotplug SOCKET HOST_BDF CYCLES GUEST_LOG\n");
    return 2;
  }
  const std::string bdf = argv[2];
  const int cycles = std::atoi(argv[3]);
  const std::string log = argv[4];
  Qmp qmp(argv[1]);
  std::vector<double> add, del;
  for (int c = 1; c <= cycles; ++c) {
    auto t0 = Clock::now();
    qmp.Execute(R"({"execute": "device_add", "arguments": {"driver": "vfio-pci", "host": ")" + bdf +
                R"(", "id": "hp0"}})");
    add.push_back(Ms(Clock::now() - t0));
    if (!WaitForLog(log, "L2: edu appeared (" + std::to_string(c) + ")", 60)) {
      Fail("the guest did not see the device in cycle " + std::to_string(c));
    }
    t0 = Clock::now();
    qmp.Execute(R"({"execute": "device_del", "arguments": {"id": "hp0"}})");
    qmp.WaitEvent("DEVICE_DELETED", "\"hp0\"");
    del.push_back(Ms(Clock::now() - t0));
    if (!WaitForLog(log, "L2: edu gone (" + std::to_string(c) + ")", 60)) {
      Fail("the guest did not see the device go in cycle " + std::to_string(c));
    }
  }
  std::printf("qmp_hotplug: device_add over %d cycles: p50 %.1f ms p99 %.1f ms\n", cycles,
              Percentile(add, 50), Percentile(add, 99));
  std::printf("qmp_hotplug: device_del until DEVICE_DELETED: p50 %.1f ms p99 %.1f ms\n",
              Percentile(del, 50), Percentile(del, 99));
  return 0;
}
