#include "vmm/vmmctl.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "base/scoped_fd.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/vmm/v1/vmm.grpc.pb.h"

namespace vmmkit::vmm {
namespace {

namespace pb = ::vmmkit::vmm::v1;

constexpr char kUsage[] =
    "usage: vmmctl [--socket=PATH | --tcp=127.0.0.1:PORT] [--json] [--timeout=10s] [--time]\n"
    "              COMMAND\n"
    "commands:\n"
    "  get                       the VM: state, configuration, boot time, vCPUs, devices\n"
    "  pause | resume            stop or restart the vCPUs\n"
    "  shutdown [--force] [--grace=30s]\n"
    "                            ask the guest to power off (or stop the VM at once)\n"
    "  devices                   list the VM's devices\n"
    "  device ID                 one device\n"
    "  add ID HOST [--slot=N]    hot-plug host PCI function HOST (DDDD:BB:DD.F or its sysfs path,\n"
    "                            bound to vfio-pci) as device ID\n"
    "  add-disk ID PATH [--readonly] [--queues=N] [--engine=threads|io_uring] [--slot=N]\n"
    "                            hot-plug the raw image at PATH (absolute) as virtio-blk disk ID\n"
    "  add-nic ID TAP [--mac=52:54:00:12:34:56] [--queues=N] [--vhost] [--slot=N]\n"
    "          [--rx-bytes=N] [--rx-packets=N] [--tx-bytes=N] [--tx-packets=N]  (per second)\n"
    "                            hot-plug a virtio-net interface ID on the host tap TAP\n"
    "  remove ID [--wait=10s]    ask the guest to release device ID; returns once it is gone\n"
    "  health                    the server's gRPC health status\n"
    "  watch                     print events until the VM stops\n"
    "exit status: 0 done, 1 server error, 2 usage, 3 unreachable, 4 refused in this state,\n"
    "5 bad request, 6 timed out, 7 no permission (to use the socket, or for vmm to open a file)\n";

struct Options {
  std::string target = "unix:/run/vmm.sock";
  bool json = false;
  absl::Duration timeout = absl::Seconds(10);
  bool force = false;
  std::optional<absl::Duration> grace;
  std::string command;
  bool time = false;                                // Print how long add/remove took (stderr).
  std::vector<std::string> arguments;               // device, add, remove.
  std::optional<uint32_t> slot;                     // add, add-disk --slot.
  bool read_only = false;                           // add-disk --readonly.
  std::optional<uint32_t> queues;                   // add-disk --queues.
  pb::DiskEngine engine = pb::DISK_ENGINE_DEFAULT;  // add-disk --engine.
  std::string mac;                                  // add-nic --mac.
  bool vhost = false;                               // add-nic --vhost.
  uint64_t limits[4] = {0, 0, 0, 0};                // add-nic --rx-bytes ... --tx-packets.
  std::optional<absl::Duration> wait;               // remove --wait.
};

int ExitFor(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::UNAVAILABLE:
      return kExitUnreachable;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return kExitRefused;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitBadRequest;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitTimeout;
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitPermission;
    default:
      return kExitServerError;
  }
}

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const auto i = static_cast<size_t>(code);
  return i < sizeof(kNames) / sizeof(kNames[0]) ? kNames[i] : "?";
}

int Fail(std::ostream& err, const Options& o, const grpc::Status& s) {
  err << "vmmctl: " << o.command << ": " << CodeName(s.error_code()) << ": " << s.error_message()
      << "\n";
  return ExitFor(s);
}

std::string Json(const google::protobuf::Message& m, bool pretty) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = pretty;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  if (!pretty) out += "\n";
  return out;
}

std::string StateName(pb::VmState s) {
  std::string name = pb::VmState_Name(s);
  return absl::StartsWith(name, "VM_STATE_") ? name.substr(9) : name;
}

std::string KindName(pb::DeviceKind k) {
  switch (k) {
    case pb::DEVICE_KIND_PLATFORM:
      return "platform";
    case pb::DEVICE_KIND_PCI:
      return "pci";
    case pb::DEVICE_KIND_VFIO_PCI:
      return "vfio-pci";
    case pb::DEVICE_KIND_VIRTIO_BLK:
      return "virtio-blk";
    case pb::DEVICE_KIND_VIRTIO_NET:
      return "virtio-net";
    case pb::DEVICE_KIND_VIRTIO_VSOCK:
      return "virtio-vsock";
    default:
      return "?";
  }
}

// What an added or removed device is, for the one line that reports it.
std::string What(const pb::Device& d) {
  if (d.has_disk()) return absl::StrCat(" (disk ", d.disk().path(), ")");
  if (d.has_net()) return absl::StrCat(" (tap ", d.net().tap(), ", mac ", d.net().mac(), ")");
  return absl::StrCat(" (host ", d.host_bdf(), ")");
}

void PrintDevices(std::ostream& out, const google::protobuf::RepeatedPtrField<pb::Device>& devs) {
  for (const pb::Device& d : devs) {
    out << "  " << d.id() << "\t" << KindName(d.kind());
    if (!d.guest_bdf().empty()) out << "\t" << d.guest_bdf();
    if (!d.host_bdf().empty()) out << "\thost " << d.host_bdf();
    out << "\t" << d.description() << "\n";
    if (d.has_iommu()) {
      const pb::DeviceIommu& i = d.iommu();
      out << "    iommu\t"
          << (!i.translation_enabled() ? std::string("translation off (1:1)")
              : i.has_domain()         ? absl::StrCat("domain ", i.domain())
                                       : std::string("no domain"))
          << ", " << i.shadowed_mappings() << " shadowed mappings; invalidations: page "
          << i.page_invalidations() << ", domain " << i.domain_invalidations() << ", global "
          << i.global_invalidations() << ", context " << i.context_invalidations() << "; host map "
          << i.host_map_calls() << ", unmap " << i.host_unmap_calls() << "\n";
    }
    if (d.has_disk()) {
      const pb::DeviceDisk& k = d.disk();
      out << "    disk\t" << k.path() << ", " << k.capacity_bytes() << " bytes, "
          << (k.read_only() ? "read-only" : "read-write") << ", " << k.queues() << " queue(s) ("
          << (k.engine() == pb::DISK_ENGINE_IO_URING ? "io_uring" : "threads") << "); reads "
          << k.reads() << " (" << k.bytes_read() << " bytes), writes " << k.writes() << " ("
          << k.bytes_written() << " bytes), flushes " << k.flushes() << ", discards "
          << k.discards() << ", write-zeroes " << k.write_zeroes() << ", refused " << k.refused()
          << "\n";
    }
    if (d.has_vsock()) {
      out << "    vsock\tcid " << d.vsock().cid() << "; interrupts rx " << d.vsock().rx_interrupts()
          << ", tx " << d.vsock().tx_interrupts() << "\n";
    }
    if (d.has_net()) {
      const pb::DeviceNet& n = d.net();
      out << "    net\ttap " << n.tap() << ", mac " << n.mac() << ", " << n.queue_pairs()
          << " queue pair(s) (" << (n.vhost() ? "vhost-net" : "vmm") << "); rx " << n.rx_packets()
          << " (" << n.rx_bytes() << " bytes), tx " << n.tx_packets() << " (" << n.tx_bytes()
          << " bytes); dropped rx " << n.rx_dropped() << ", filtered rx " << n.rx_filtered()
          << ", dropped tx " << n.tx_dropped() << ", refused " << n.refused() << "\n";
    }
  }
}

void PrintVm(std::ostream& out, const pb::Vm& vm) {
  std::vector<int64_t> tids;
  for (const pb::Vcpu& v : vm.vcpus()) tids.push_back(v.host_tid());
  out << "state     " << StateName(vm.state()) << "\n"
      << "vcpus     " << vm.config().vcpus() << " (host threads " << absl::StrJoin(tids, " ")
      << ")\n"
      << "memory    " << vm.config().memory_mib() << " MiB\n"
      << "kernel    " << vm.config().kernel() << "\n";
  if (!vm.config().initrd().empty()) out << "initrd    " << vm.config().initrd() << "\n";
  out << "cmdline   " << vm.config().cmdline() << "\n"
      << "created   "
      << absl::FormatTime(absl::FromUnixSeconds(vm.create_time().seconds()), absl::UTCTimeZone())
      << "\n";
  if (vm.has_boot_time()) {
    out << "boot time "
        << absl::FormatDuration(absl::Seconds(vm.boot_time().seconds()) +
                                absl::Nanoseconds(vm.boot_time().nanos()))
        << "\n";
  }
  out << "devices   " << vm.devices_size() << "\n";
  PrintDevices(out, vm.devices());
  const pb::Resources& r = vm.resources();
  out << "resources dma mappings " << r.dma_mappings() << " (" << (r.dma_mapped_bytes() >> 20)
      << " MiB), msi routes " << r.msi_routes() << ", memory listeners " << r.memory_listeners()
      << ", kvm slots " << r.kvm_memory_slots() << ", heap " << (r.heap_in_use_bytes() >> 10)
      << " KiB, fds " << r.open_fds() << ", threads " << r.threads() << "\n";
}

void PrintEvent(std::ostream& out, const pb::Event& e) {
  out << absl::FormatTime(
      "%H:%M:%E3S ",
      absl::FromUnixSeconds(e.time().seconds()) + absl::Nanoseconds(e.time().nanos()),
      absl::UTCTimeZone());
  if (e.has_state_changed()) {
    out << "state " << StateName(e.state_changed().old_state()) << " -> "
        << StateName(e.state_changed().new_state()) << " (" << e.state_changed().reason() << ")";
  } else if (e.has_device()) {
    out << "device " << pb::Event::DeviceEvent::Type_Name(e.device().type()) << " "
        << e.device().device().id() << " " << e.device().detail();
  } else if (e.has_guest_boot_complete()) {
    out << "guest boot complete after "
        << absl::FormatDuration(absl::Seconds(e.guest_boot_complete().boot_time().seconds()) +
                                absl::Nanoseconds(e.guest_boot_complete().boot_time().nanos()));
  } else if (e.has_error()) {
    out << "error " << e.error().code() << ": " << e.error().message();
  }
  out << "\n";
}

bool ParseOptions(const std::vector<std::string>& args, Options* o, std::ostream& err) {
  for (const std::string& a : args) {
    auto value = [&](const char* flag) -> std::optional<std::string> {
      const std::string prefix = absl::StrCat(flag, "=");
      if (absl::StartsWith(a, prefix)) return a.substr(prefix.size());
      return std::nullopt;
    };
    if (auto v = value("--socket")) {
      o->target = "unix:" + *v;
    } else if (auto t = value("--tcp")) {
      o->target = *t;
    } else if (a == "--json") {
      o->json = true;
    } else if (a == "--time") {
      o->time = true;
    } else if (auto d = value("--timeout")) {
      if (!absl::ParseDuration(*d, &o->timeout) || o->timeout <= absl::ZeroDuration()) {
        err << "vmmctl: --timeout=" << *d << ": not a positive duration (e.g. 5s)\n";
        return false;
      }
    } else if (a == "--force") {
      o->force = true;
    } else if (auto g = value("--grace")) {
      absl::Duration grace;
      if (!absl::ParseDuration(*g, &grace) || grace <= absl::ZeroDuration()) {
        err << "vmmctl: --grace=" << *g << ": not a positive duration (e.g. 30s)\n";
        return false;
      }
      o->grace = grace;
    } else if (auto sl = value("--slot")) {
      uint32_t slot;
      if (!absl::SimpleAtoi(*sl, &slot) || slot == 0 || slot > 31) {
        err << "vmmctl: --slot=" << *sl << ": not a slot from 1 to 31\n";
        return false;
      }
      o->slot = slot;
    } else if (auto m = value("--mac")) {
      o->mac = *m;
    } else if (absl::StartsWith(a, "--rx-bytes=") || absl::StartsWith(a, "--rx-packets=") ||
               absl::StartsWith(a, "--tx-bytes=") || absl::StartsWith(a, "--tx-packets=")) {
      const size_t eq = a.find('=');
      const std::string name = a.substr(0, eq), number = a.substr(eq + 1);
      uint64_t rate;
      if (!absl::SimpleAtoi(number, &rate) || rate == 0) {
        err << "vmmctl: " << name << "=" << number << ": not a positive rate\n";
        return false;
      }
      const int which = name == "--rx-bytes"     ? 0
                        : name == "--rx-packets" ? 1
                        : name == "--tx-bytes"   ? 2
                                                 : 3;
      o->limits[which] = rate;
    } else if (a == "--vhost") {
      o->vhost = true;
    } else if (a == "--readonly") {
      o->read_only = true;
    } else if (auto q = value("--queues")) {
      uint32_t queues;
      if (!absl::SimpleAtoi(*q, &queues) || queues == 0 || queues > 16) {
        err << "vmmctl: --queues=" << *q << ": not a count from 1 to 16\n";
        return false;
      }
      o->queues = queues;
    } else if (auto e = value("--engine")) {
      if (*e == "threads") {
        o->engine = pb::DISK_ENGINE_THREADS;
      } else if (*e == "io_uring") {
        o->engine = pb::DISK_ENGINE_IO_URING;
      } else {
        err << "vmmctl: --engine=" << *e << ": not threads or io_uring\n";
        return false;
      }
    } else if (auto w = value("--wait")) {
      absl::Duration wait;
      if (!absl::ParseDuration(*w, &wait) || wait <= absl::ZeroDuration()) {
        err << "vmmctl: --wait=" << *w << ": not a positive duration (e.g. 10s)\n";
        return false;
      }
      o->wait = wait;
    } else if (absl::StartsWith(a, "-")) {
      err << "vmmctl: unknown option " << a << "\n" << kUsage;
      return false;
    } else if (o->command.empty()) {
      o->command = a;
    } else if ((o->command == "device" || o->command == "remove") && o->arguments.empty()) {
      o->arguments.push_back(a);
    } else if ((o->command == "add" || o->command == "add-disk" || o->command == "add-nic") &&
               o->arguments.size() < 2) {
      o->arguments.push_back(a);
    } else {
      err << "vmmctl: unexpected argument " << a << "\n" << kUsage;
      return false;
    }
  }
  if (o->command.empty()) {
    err << kUsage;
    return false;
  }
  if ((o->command == "device" || o->command == "remove") && o->arguments.empty()) {
    err << "vmmctl: " << o->command << " wants an ID (see: vmmctl devices)\n";
    return false;
  }
  if (o->command == "add" && o->arguments.size() != 2) {
    err << "vmmctl: add wants an ID and a host device (e.g. add hp0 0000:01:00.0)\n";
    return false;
  }
  if (o->command == "add-disk" && o->arguments.size() != 2) {
    err << "vmmctl: add-disk wants an ID and an image path (e.g. add-disk vol0 /var/vm/vol0.img)\n";
    return false;
  }
  if (o->command == "add-nic" && o->arguments.size() != 2) {
    err << "vmmctl: add-nic wants an ID and a tap (e.g. add-nic net1 vmtap1)\n";
    return false;
  }
  if (o->slot && o->command != "add" && o->command != "add-disk" && o->command != "add-nic") {
    err << "vmmctl: --slot goes with add, add-disk and add-nic\n";
    return false;
  }
  if ((o->read_only || o->engine != pb::DISK_ENGINE_DEFAULT) && o->command != "add-disk") {
    err << "vmmctl: --readonly and --engine go with add-disk\n";
    return false;
  }
  if (o->queues && o->command != "add-disk" && o->command != "add-nic") {
    err << "vmmctl: --queues goes with add-disk and add-nic\n";
    return false;
  }
  const bool limited = o->limits[0] || o->limits[1] || o->limits[2] || o->limits[3];
  if ((!o->mac.empty() || o->vhost || limited) && o->command != "add-nic") {
    err << "vmmctl: --mac, --vhost and the rate limits go with add-nic\n";
    return false;
  }
  if (o->wait && o->command != "remove") {
    err << "vmmctl: --wait goes with remove\n";
    return false;
  }
  if ((o->force || o->grace) && o->command != "shutdown") {
    err << "vmmctl: --force and --grace go with shutdown\n";
    return false;
  }
  if (o->force && o->grace) {
    err << "vmmctl: --force and --grace exclude each other\n";
    return false;
  }
  return true;
}

}  // namespace

// gRPC reports a socket the caller may not open as UNAVAILABLE, like a VMM that is not there;
// tell the two apart before dialing, since the remedies differ.
bool CheckSocketPermission(const std::string& target, std::ostream& err) {
  if (!absl::StartsWith(target, "unix:")) return true;
  const std::string path = target.substr(5);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return true;  // gRPC reports it.
  std::memcpy(addr.sun_path, path.data(), path.size());
  ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return true;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return true;
  if (errno != EACCES && errno != EPERM) return true;
  struct stat st {};
  const bool known = ::stat(path.c_str(), &st) == 0;
  err << "vmmctl: " << path << ": permission denied";
  if (known) {
    err << absl::StrFormat(" (socket mode %04o, owner uid %d; you are uid %d)", st.st_mode & 07777,
                           st.st_uid, ::geteuid());
  }
  err << "\n";
  return false;
}

int RunVmmctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Options o;
  if (!ParseOptions(args, &o, err)) return kExitUsage;
  if (!CheckSocketPermission(o.target, err)) return kExitPermission;
  auto channel = grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());
  auto stub = pb::VmService::NewStub(channel);
  auto deadline = [&](grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::nanoseconds(absl::ToInt64Nanoseconds(o.timeout)));
  };
  grpc::ClientContext ctx;
  if (o.command != "watch") deadline(&ctx);
  if (o.time) {
    // --time measures the operation, not the connection: gRPC connects lazily on the first call.
    (void)channel->WaitForConnected(std::chrono::system_clock::now() +
                                    std::chrono::nanoseconds(absl::ToInt64Nanoseconds(o.timeout)));
  }

  if (o.command == "get" || o.command == "pause" || o.command == "resume") {
    pb::Vm vm;
    const absl::Time start = absl::Now();
    const grpc::Status s = o.command == "get"     ? stub->GetVm(&ctx, {}, &vm)
                           : o.command == "pause" ? stub->Pause(&ctx, {}, &vm)
                                                  : stub->Resume(&ctx, {}, &vm);
    if (o.time)
      err << "vmmctl: " << o.command << " took " << absl::FormatDuration(absl::Now() - start)
          << "\n";
    if (!s.ok()) return Fail(err, o, s);
    if (o.json) {
      out << Json(vm, true);
    } else if (o.command == "get") {
      PrintVm(out, vm);
    } else {
      out << "state " << StateName(vm.state()) << "\n";
    }
    return kExitOk;
  }
  if (o.command == "devices") {
    pb::ListDevicesResponse resp;
    const grpc::Status s = stub->ListDevices(&ctx, {}, &resp);
    if (!s.ok()) return Fail(err, o, s);
    if (o.json) {
      out << Json(resp, true);
    } else {
      PrintDevices(out, resp.devices());
    }
    return kExitOk;
  }
  if (o.command == "device") {
    pb::GetDeviceRequest req;
    req.set_id(o.arguments[0]);
    pb::Device d;
    const grpc::Status s = stub->GetDevice(&ctx, req, &d);
    if (!s.ok()) return Fail(err, o, s);
    if (o.json) {
      out << Json(d, true);
    } else {
      google::protobuf::RepeatedPtrField<pb::Device> one;
      *one.Add() = d;
      PrintDevices(out, one);
    }
    return kExitOk;
  }
  if (o.command == "add" || o.command == "add-disk" || o.command == "add-nic") {
    pb::AddDeviceRequest req;
    req.set_id(o.arguments[0]);
    if (o.command == "add") {
      req.set_host(o.arguments[1]);
    } else if (o.command == "add-nic") {
      pb::AddDeviceRequest::VirtioNet* n = req.mutable_virtio_net();
      n->set_tap(o.arguments[1]);
      n->set_mac(o.mac);
      n->set_queue_pairs(o.queues.value_or(0));
      n->set_vhost(o.vhost);
      n->mutable_rx_limit()->set_bytes_per_second(o.limits[0]);
      n->mutable_rx_limit()->set_packets_per_second(o.limits[1]);
      n->mutable_tx_limit()->set_bytes_per_second(o.limits[2]);
      n->mutable_tx_limit()->set_packets_per_second(o.limits[3]);
    } else {
      pb::AddDeviceRequest::VirtioBlk* b = req.mutable_virtio_blk();
      b->set_path(o.arguments[1]);
      b->set_read_only(o.read_only);
      b->set_queues(o.queues.value_or(0));
      b->set_engine(o.engine);
    }
    req.set_slot(o.slot.value_or(0));
    pb::Device d;
    const absl::Time start = absl::Now();
    const grpc::Status s = stub->AddDevice(&ctx, req, &d);
    if (o.time)
      err << "vmmctl: AddDevice took " << absl::FormatDuration(absl::Now() - start) << "\n";
    if (!s.ok()) return Fail(err, o, s);
    if (o.json) {
      out << Json(d, true);
    } else {
      out << "added " << d.id() << " at " << d.guest_bdf() << What(d) << "\n";
    }
    return kExitOk;
  }
  if (o.command == "remove") {
    pb::RemoveDeviceRequest req;
    req.set_id(o.arguments[0]);
    const absl::Duration wait = o.wait.value_or(absl::Seconds(10));
    const int64_t ns = absl::ToInt64Nanoseconds(wait);
    req.mutable_timeout()->set_seconds(ns / 1000000000);
    req.mutable_timeout()->set_nanos(static_cast<int32_t>(ns % 1000000000));
    // The server waits up to `wait` for the guest; the call itself may take that much longer.
    grpc::ClientContext remove_ctx;
    remove_ctx.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::nanoseconds(absl::ToInt64Nanoseconds(wait + o.timeout)));
    pb::RemoveDeviceResponse resp;
    const absl::Time start = absl::Now();
    const grpc::Status s = stub->RemoveDevice(&remove_ctx, req, &resp);
    if (o.time) {
      err << "vmmctl: RemoveDevice took " << absl::FormatDuration(absl::Now() - start) << "\n";
    }
    if (!s.ok()) return Fail(err, o, s);
    if (o.json) {
      out << Json(resp, true);
    } else {
      const pb::Device& d = resp.device();
      out << "removed " << d.id() << What(d) << "\n";
    }
    return kExitOk;
  }
  if (o.command == "shutdown") {
    pb::ShutdownRequest req;
    req.set_mode(o.force ? pb::ShutdownRequest::MODE_FORCED : pb::ShutdownRequest::MODE_GRACEFUL);
    if (o.grace) {
      const int64_t ns = absl::ToInt64Nanoseconds(*o.grace);
      req.mutable_graceful_timeout()->set_seconds(ns / 1000000000);
      req.mutable_graceful_timeout()->set_nanos(static_cast<int32_t>(ns % 1000000000));
    }
    pb::ShutdownResponse resp;
    const grpc::Status s = stub->Shutdown(&ctx, req, &resp);
    if (!s.ok()) return Fail(err, o, s);
    if (o.json) {
      out << Json(resp, true);
    } else {
      out << "state " << StateName(resp.state()) << "\n";
    }
    return kExitOk;
  }
  if (o.command == "health") {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::health::v1::HealthCheckResponse resp;
    const absl::Time start = absl::Now();
    const grpc::Status s = health->Check(&ctx, {}, &resp);
    if (o.time) err << "vmmctl: health took " << absl::FormatDuration(absl::Now() - start) << "\n";
    if (!s.ok()) return Fail(err, o, s);
    const std::string status =
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
    if (o.json) {
      out << Json(resp, true);
    } else {
      out << status << "\n";
    }
    return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                           : kExitServerError;
  }
  if (o.command == "watch") {
    auto reader = stub->WatchEvents(&ctx, {});
    pb::Event e;
    while (reader->Read(&e)) {
      if (o.json) {
        out << Json(e, false);
      } else {
        PrintEvent(out, e);
      }
      out.flush();
    }
    const grpc::Status s = reader->Finish();
    return s.ok() ? kExitOk : Fail(err, o, s);
  }
  err << "vmmctl: unknown command " << o.command << "\n" << kUsage;
  return kExitUsage;
}

}  // namespace vmmkit::vmm
