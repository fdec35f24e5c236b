#include "vmm/api_service.h"

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vmmkit::vmm {
namespace {

namespace pb = ::vmmkit::vmm::v1;

pb::VmState ToProto(VmState s) {
  switch (s) {
    case VmState::kCreated:
      return pb::VM_STATE_CREATED;
    case VmState::kRunning:
      return pb::VM_STATE_RUNNING;
    case VmState::kPaused:
      return pb::VM_STATE_PAUSED;
    case VmState::kStopping:
      return pb::VM_STATE_STOPPING;
  }
  return pb::VM_STATE_UNSPECIFIED;
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void ToProto(const DeviceSummary& d, pb::Device* out) {
  out->set_id(d.id);
  switch (d.kind) {
    case DeviceSummary::Kind::kPlatform:
      out->set_kind(pb::DEVICE_KIND_PLATFORM);
      break;
    case DeviceSummary::Kind::kPci:
      out->set_kind(pb::DEVICE_KIND_PCI);
      break;
    case DeviceSummary::Kind::kVfioPci:
      out->set_kind(pb::DEVICE_KIND_VFIO_PCI);
      break;
    case DeviceSummary::Kind::kVirtioBlk:
      out->set_kind(pb::DEVICE_KIND_VIRTIO_BLK);
      break;
    case DeviceSummary::Kind::kVirtioNet:
      out->set_kind(pb::DEVICE_KIND_VIRTIO_NET);
      break;
    case DeviceSummary::Kind::kVirtioVsock:
      out->set_kind(pb::DEVICE_KIND_VIRTIO_VSOCK);
      break;
  }
  out->set_guest_bdf(d.guest_bdf);
  out->set_host_bdf(d.host_bdf);
  out->set_description(d.description);
  if (d.iommu) {
    pb::DeviceIommu* i = out->mutable_iommu();
    if (d.iommu->domain) i->set_domain(*d.iommu->domain);
    i->set_translation_enabled(d.iommu->translation_enabled);
    i->set_shadowed_mappings(d.iommu->shadowed_mappings);
    i->set_page_invalidations(d.iommu->page_invalidations);
    i->set_domain_invalidations(d.iommu->domain_invalidations);
    i->set_global_invalidations(d.iommu->global_invalidations);
    i->set_context_invalidations(d.iommu->context_invalidations);
    i->set_host_map_calls(d.iommu->host_map_calls);
    i->set_host_unmap_calls(d.iommu->host_unmap_calls);
  }
  if (d.disk) {
    pb::DeviceDisk* k = out->mutable_disk();
    k->set_path(d.disk->path);
    k->set_read_only(d.disk->read_only);
    k->set_capacity_bytes(d.disk->capacity_bytes);
    k->set_queues(d.disk->queues);
    k->set_reads(d.disk->reads);
    k->set_writes(d.disk->writes);
    k->set_flushes(d.disk->flushes);
    k->set_discards(d.disk->discards);
    k->set_write_zeroes(d.disk->write_zeroes);
    k->set_bytes_read(d.disk->bytes_read);
    k->set_bytes_written(d.disk->bytes_written);
    k->set_refused(d.disk->refused);
    k->set_engine(d.disk->engine == virtio_blk::BlockEngine::kIoUring ? pb::DISK_ENGINE_IO_URING
                                                                      : pb::DISK_ENGINE_THREADS);
  }
  if (d.net) {
    pb::DeviceNet* n = out->mutable_net();
    const std::array<uint8_t, 6>& m = d.net->mac;
    n->set_tap(d.net->tap);
    n->set_mac(
        absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]));
    n->set_queue_pairs(d.net->queue_pairs);
    n->set_rx_packets(d.net->rx_packets);
    n->set_rx_bytes(d.net->rx_bytes);
    n->set_tx_packets(d.net->tx_packets);
    n->set_tx_bytes(d.net->tx_bytes);
    n->set_rx_dropped(d.net->rx_dropped);
    n->set_rx_filtered(d.net->rx_filtered);
    n->set_tx_dropped(d.net->tx_dropped);
    n->set_refused(d.net->refused);
    n->set_vhost(d.net->vhost);
  }
  if (d.vsock) {
    pb::DeviceVsock* v = out->mutable_vsock();
    v->set_cid(d.vsock->cid);
    v->set_rx_interrupts(d.vsock->rx_interrupts);
    v->set_tx_interrupts(d.vsock->tx_interrupts);
  }
}

void ToProto(const VmStatus& s, pb::Vm* out) {
  out->set_state(ToProto(s.state));
  pb::VmConfig* c = out->mutable_config();
  c->set_vcpus(s.config.cpus);
  c->set_memory_mib(s.config.memory_bytes >> 20);
  c->set_kernel(s.config.kernel_path);
  c->set_initrd(s.config.initrd_path);
  c->set_cmdline(s.config.cmdline);
  ToProto(s.create_time, out->mutable_create_time());
  if (s.boot_time) ToProto(*s.boot_time, out->mutable_boot_time());
  for (size_t i = 0; i < s.vcpu_tids.size(); ++i) {
    pb::Vcpu* v = out->add_vcpus();
    v->set_index(static_cast<uint32_t>(i));
    v->set_host_tid(s.vcpu_tids[i]);
  }
  for (const DeviceSummary& d : s.devices) ToProto(d, out->add_devices());
  pb::Resources* r = out->mutable_resources();
  r->set_dma_mappings(s.resources.dma_mappings);
  r->set_dma_mapped_bytes(s.resources.dma_mapped_bytes);
  r->set_msi_routes(s.resources.msi_routes);
  r->set_memory_listeners(s.resources.memory_listeners);
  r->set_open_fds(s.resources.open_fds);
  r->set_threads(s.resources.threads);
  r->set_kvm_memory_slots(s.resources.kvm_memory_slots);
  r->set_heap_in_use_bytes(s.resources.heap_in_use_bytes);
}

void ToProto(const VmEvent& e, pb::Event* out) {
  ToProto(e.time, out->mutable_time());
  if (const auto* c = std::get_if<VmEvent::StateChanged>(&e.what)) {
    auto* sc = out->mutable_state_changed();
    sc->set_old_state(ToProto(c->old_state));
    sc->set_new_state(ToProto(c->new_state));
    sc->set_reason(c->reason);
  } else if (const auto* d = std::get_if<VmEvent::DeviceChanged>(&e.what)) {
    auto* de = out->mutable_device();
    de->set_type(
        d->type == VmEvent::DeviceChanged::Type::kAdded     ? pb::Event::DeviceEvent::TYPE_ADDED
        : d->type == VmEvent::DeviceChanged::Type::kRemoved ? pb::Event::DeviceEvent::TYPE_REMOVED
                                                            : pb::Event::DeviceEvent::TYPE_FAILED);
    ToProto(d->device, de->mutable_device());
    de->set_detail(d->detail);
  } else if (const auto* b = std::get_if<VmEvent::BootComplete>(&e.what)) {
    ToProto(b->boot_time, out->mutable_guest_boot_complete()->mutable_boot_time());
  } else if (const auto* err = std::get_if<VmEvent::Error>(&e.what)) {
    out->mutable_error()->set_code(static_cast<int32_t>(err->status.code()));
    out->mutable_error()->set_message(std::string(err->status.message()));
  }
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

grpc::Status VmServiceImpl::GetVm(grpc::ServerContext*, const pb::GetVmRequest*, pb::Vm* out) {
  absl::StatusOr<VmStatus> s = c_.GetVm();
  if (s.ok()) ToProto(*s, out);
  return ToGrpcStatus(s.status());
}

grpc::Status VmServiceImpl::Pause(grpc::ServerContext*, const pb::PauseRequest*, pb::Vm* out) {
  absl::StatusOr<VmStatus> s = c_.Pause();
  if (s.ok()) ToProto(*s, out);
  return ToGrpcStatus(s.status());
}

grpc::Status VmServiceImpl::Resume(grpc::ServerContext*, const pb::ResumeRequest*, pb::Vm* out) {
  absl::StatusOr<VmStatus> s = c_.Resume();
  if (s.ok()) ToProto(*s, out);
  return ToGrpcStatus(s.status());
}

grpc::Status VmServiceImpl::Shutdown(grpc::ServerContext*, const pb::ShutdownRequest* req,
                                     pb::ShutdownResponse* out) {
  bool graceful;
  switch (req->mode()) {
    case pb::ShutdownRequest::MODE_GRACEFUL:
      graceful = true;
      break;
    case pb::ShutdownRequest::MODE_FORCED:
      graceful = false;
      break;
    default:
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("Shutdown: mode must be MODE_GRACEFUL or MODE_FORCED, not ", req->mode())));
  }
  absl::Duration timeout = absl::ZeroDuration();
  if (req->has_graceful_timeout()) {
    if (!graceful) {
      return ToGrpcStatus(
          absl::InvalidArgumentError("Shutdown: graceful_timeout is for MODE_GRACEFUL only"));
    }
    const auto& d = req->graceful_timeout();
    if (d.nanos() < 0 || d.nanos() >= 1000000000 || d.seconds() <= 0 || d.seconds() > 600) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("Shutdown: graceful_timeout ", d.seconds(), "s ", d.nanos(),
                       "ns is not a positive duration of at most 10 minutes")));
    }
    timeout = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  }
  absl::StatusOr<VmState> s = c_.Shutdown(graceful, timeout);
  if (s.ok()) out->set_state(ToProto(*s));
  return ToGrpcStatus(s.status());
}

grpc::Status VmServiceImpl::ListDevices(grpc::ServerContext*, const pb::ListDevicesRequest*,
                                        pb::ListDevicesResponse* out) {
  absl::StatusOr<std::vector<DeviceSummary>> s = c_.ListDevices();
  if (s.ok()) {
    for (const DeviceSummary& d : *s) ToProto(d, out->add_devices());
  }
  return ToGrpcStatus(s.status());
}

grpc::Status VmServiceImpl::AddDevice(grpc::ServerContext*, const pb::AddDeviceRequest* req,
                                      pb::Device* out) {
  absl::StatusOr<DeviceSummary> d = absl::InvalidArgumentError(
      "AddDevice: the device is required (host, virtio_blk or virtio_net)");
  switch (req->device_case()) {
    case pb::AddDeviceRequest::kHost:
      d = c_.AddDevice(req->id(), req->host(), req->slot());
      break;
    case pb::AddDeviceRequest::kVirtioBlk: {
      const pb::AddDeviceRequest::VirtioBlk& b = req->virtio_blk();
      std::optional<virtio_blk::BlockEngine> engine;
      switch (b.engine()) {
        case pb::DISK_ENGINE_DEFAULT:
          engine = virtio_blk::kDefaultEngine;
          break;
        case pb::DISK_ENGINE_THREADS:
          engine = virtio_blk::BlockEngine::kThreads;
          break;
        case pb::DISK_ENGINE_IO_URING:
          engine = virtio_blk::BlockEngine::kIoUring;
          break;
        default:
          break;
      }
      if (!engine) {
        d = absl::InvalidArgumentError(
            absl::StrCat("AddDevice: virtio_blk.engine ", b.engine(), " is not a DiskEngine"));
        break;
      }
      d = c_.AddDisk(req->id(), b.path(), b.read_only(), b.queues(), req->slot(), *engine);
      break;
    }
    case pb::AddDeviceRequest::kVirtioNet: {
      const pb::AddDeviceRequest::VirtioNet& n = req->virtio_net();
      d = c_.AddNic(req->id(), n.tap(), n.mac(), n.queue_pairs(), req->slot(), n.vhost(),
                    {.rx_bytes = n.rx_limit().bytes_per_second(),
                     .rx_packets = n.rx_limit().packets_per_second(),
                     .tx_bytes = n.tx_limit().bytes_per_second(),
                     .tx_packets = n.tx_limit().packets_per_second()});
      break;
    }
    case pb::AddDeviceRequest::DEVICE_NOT_SET:
      break;
  }
  if (d.ok()) ToProto(*d, out);
  return ToGrpcStatus(d.status());
}

grpc::Status VmServiceImpl::RemoveDevice(grpc::ServerContext*, const pb::RemoveDeviceRequest* req,
                                         pb::RemoveDeviceResponse* out) {
  absl::Duration timeout = absl::ZeroDuration();
  if (req->has_timeout()) {
    const auto& d = req->timeout();
    if (d.nanos() < 0 || d.nanos() >= 1000000000 || d.seconds() < 0 ||
        (d.seconds() == 0 && d.nanos() == 0)) {
      return ToGrpcStatus(
          absl::InvalidArgumentError(absl::StrCat("RemoveDevice: timeout ", d.seconds(), "s ",
                                                  d.nanos(), "ns is not a positive duration")));
    }
    timeout = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  }
  absl::StatusOr<DeviceSummary> d = c_.RemoveDevice(req->id(), timeout);
  if (d.ok()) ToProto(*d, out->mutable_device());
  return ToGrpcStatus(d.status());
}

grpc::Status VmServiceImpl::GetDevice(grpc::ServerContext*, const pb::GetDeviceRequest* req,
                                      pb::Device* out) {
  absl::StatusOr<DeviceSummary> d = c_.GetDevice(req->id());
  if (d.ok()) ToProto(*d, out);
  return ToGrpcStatus(d.status());
}

grpc::Status VmServiceImpl::WatchEvents(grpc::ServerContext* ctx, const pb::WatchEventsRequest*,
                                        grpc::ServerWriter<pb::Event>* writer) {
  absl::StatusOr<std::shared_ptr<EventStream>> stream = c_.Watch();
  if (!stream.ok()) return ToGrpcStatus(stream.status());
  // Poll so that a client that goes away (or a server shutdown) ends the call promptly.
  while (!ctx->IsCancelled()) {
    std::optional<VmEvent> e = (*stream)->Next(absl::Milliseconds(200));
    if (e) {
      pb::Event out;
      ToProto(*e, &out);
      if (!writer->Write(out)) break;
    } else if ((*stream)->closed()) {
      break;
    }
  }
  (*stream)->Close();
  return grpc::Status::OK;
}

}  // namespace vmmkit::vmm
