#include "irq/msi_routes.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::irq {
namespace {

std::string Name(MsiVector v) {
  return absl::StrCat("MSI device ", v.device, " vector ", v.vector);
}

}  // namespace

MsiRoutes::MsiRoutes(kvm::Vm& vm, uint32_t first_gsi, uint32_t count,
                     std::vector<kvm::GsiRoute> base, MsiTranslator* translator)
    : vm_(vm), gsis_(first_gsi, count), base_(std::move(base)), translator_(translator) {}

std::optional<uint32_t> MsiRoutes::gsi(MsiVector v) const {
  auto it = routes_.find(v);
  if (it == routes_.end()) return std::nullopt;
  return it->second.gsi;
}

std::optional<MsiMessage> MsiRoutes::delivered(MsiVector v) const {
  auto it = routes_.find(v);
  if (it == routes_.end() || it->second.blocked) return std::nullopt;
  return it->second.msg;
}

absl::StatusOr<MsiRoutes::Route*> MsiRoutes::Find(MsiVector v, const char* op) {
  auto it = routes_.find(v);
  if (it == routes_.end()) {
    return absl::NotFoundError(absl::StrCat(op, " ", Name(v), ": not enabled"));
  }
  return &it->second;
}

absl::StatusOr<MsiMessage> MsiRoutes::Resolve(const MsiMessage& msg, uint16_t source_id) const {
  // Both formats ask the translator: with remapping on, the guest may have blocked the
  // compatibility format, and a device must not get around its remapping table with it.
  if (translator_ != nullptr) return translator_->Translate(msg, source_id);
  if (!IsRemappableFormat(msg)) return msg;
  return absl::InvalidArgumentError(
      "a remappable-format MSI, but interrupt remapping is not enabled");
}

absl::Status MsiRoutes::Push() {
  std::vector<kvm::GsiRoute> table = base_;
  for (const auto& [gsi, p] : pin_routes_) {
    if (!p.delivered) continue;
    table.push_back({gsi, kvm::MsiRoute{.address = p.delivered->address,
                                        .data = p.delivered->data,
                                        .devid = std::nullopt}});
  }
  for (const auto& [v, r] : routes_) {
    if (r.blocked) continue;
    table.push_back(
        {r.gsi,
         kvm::MsiRoute{.address = r.msg.address, .data = r.msg.data, .devid = std::nullopt}});
  }
  return vm_.SetGsiRouting(table);
}

absl::Status MsiRoutes::SetPinRoute(uint32_t gsi, std::optional<MsiMessage> msg,
                                    uint16_t source_id) {
  const auto fail = [&](const absl::Status& s) { return Prefixed(s, "route of GSI ", gsi); };
  if (gsi >= gsis_.first() && gsi - gsis_.first() < gsis_.count())
    return fail(absl::InvalidArgumentError("in the MSI range"));
  for (const kvm::GsiRoute& r : base_) {
    if (r.gsi == gsi) return fail(absl::InvalidArgumentError("taken by the irqchip's routes"));
  }
  const std::map<uint32_t, PinRoute> before = pin_routes_;
  absl::Status rejected;
  if (msg) {
    absl::StatusOr<MsiMessage> delivered = Resolve(*msg, source_id);
    if (!delivered.ok()) rejected = fail(delivered.status());
    std::optional<MsiMessage> now;
    if (delivered.ok()) now = *delivered;
    auto it = before.find(gsi);
    const bool same = it != before.end() && it->second.delivered == now;
    pin_routes_[gsi] = PinRoute{*msg, source_id, now};
    // What KVM delivers did not change (a rewrite of the same entry): no table update.
    if (same) return rejected;
  } else {
    if (!pin_routes_.erase(gsi)) return absl::OkStatus();
  }
  if (absl::Status s = Push(); !s.ok()) {
    pin_routes_ = before;
    return fail(s);
  }
  return rejected;
}

absl::Status MsiRoutes::Retranslate() {
  bool changed = false;
  for (auto& [gsi, p] : pin_routes_) {
    absl::StatusOr<MsiMessage> delivered = Resolve(p.programmed, p.source_id);
    std::optional<MsiMessage> now;
    if (delivered.ok()) now = *delivered;
    if (now != p.delivered) {
      p.delivered = now;
      changed = true;
    }
  }
  for (auto& [v, r] : routes_) {
    absl::StatusOr<MsiMessage> delivered = Resolve(r.programmed, r.source_id);
    if (delivered.ok() != !r.blocked || (delivered.ok() && *delivered != r.msg)) changed = true;
    r.blocked = !delivered.ok();
    if (delivered.ok()) r.msg = *delivered;
  }
  if (!changed) return absl::OkStatus();
  if (absl::Status s = Push(); !s.ok()) {
    return Prefixed(s, "retranslate MSI routes");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> MsiRoutes::Enable(MsiVector v, const MsiMessage& msg, uint16_t source_id,
                                           const EventFd& trigger, bool masked) {
  const auto fail = [&](const absl::Status& s) { return Prefixed(s, "enable ", Name(v)); };
  if (routes_.count(v)) return fail(absl::AlreadyExistsError("already enabled"));
  absl::StatusOr<MsiMessage> delivered = Resolve(msg, source_id);
  if (!delivered.ok()) return fail(delivered.status());
  absl::StatusOr<uint32_t> gsi = gsis_.Allocate();
  if (!gsi.ok()) return fail(gsi.status());
  routes_[v] = Route{*gsi, *delivered, source_id, &trigger, masked, msg};
  if (absl::Status s = Push(); !s.ok()) {
    routes_.erase(v);
    gsis_.Free(*gsi);
    return fail(s);
  }
  if (!masked) {
    if (absl::Status s = vm_.AssignIrqfd(trigger, *gsi); !s.ok()) {
      routes_.erase(v);
      (void)Push();  // Back to the table that worked before.
      gsis_.Free(*gsi);
      return fail(s);
    }
  }
  return *gsi;
}

absl::Status MsiRoutes::Update(MsiVector v, const MsiMessage& msg) {
  ASSIGN_OR_RETURN(Route * r, Find(v, "update"));
  absl::StatusOr<MsiMessage> delivered = Resolve(msg, r->source_id);
  if (!delivered.ok()) {
    return absl::Status(delivered.status().code(),
                        absl::StrCat("update ", Name(v), ": ", delivered.status().message()));
  }
  const Route old = *r;
  r->msg = *delivered;
  r->programmed = msg;
  r->blocked = false;
  if (absl::Status s = Push(); !s.ok()) {
    *r = old;
    return s;
  }
  return absl::OkStatus();
}

absl::Status MsiRoutes::Mask(MsiVector v) {
  ASSIGN_OR_RETURN(Route * r, Find(v, "mask"));
  if (r->masked) return absl::OkStatus();
  RETURN_IF_ERROR(vm_.DeassignIrqfd(*r->trigger, r->gsi));
  r->masked = true;
  return absl::OkStatus();
}

absl::Status MsiRoutes::Unmask(MsiVector v) {
  ASSIGN_OR_RETURN(Route * r, Find(v, "unmask"));
  if (!r->masked) return absl::OkStatus();
  RETURN_IF_ERROR(vm_.AssignIrqfd(*r->trigger, r->gsi));
  r->masked = false;
  return absl::OkStatus();
}

absl::Status MsiRoutes::Disable(MsiVector v) {
  ASSIGN_OR_RETURN(Route * r, Find(v, "disable"));
  if (!r->masked) RETURN_IF_ERROR(vm_.DeassignIrqfd(*r->trigger, r->gsi));
  const Route saved = *r;
  routes_.erase(v);
  if (absl::Status s = Push(); !s.ok()) {
    routes_[v] = saved;
    if (!saved.masked) (void)vm_.AssignIrqfd(*saved.trigger, saved.gsi);
    return s;
  }
  gsis_.Free(saved.gsi);
  return absl::OkStatus();
}

absl::Status MsiRoutes::DisableDevice(uint32_t device) {
  const auto fail = [&](const absl::Status& s) {
    return Prefixed(s, "disable MSI device ", device);
  };
  std::map<MsiVector, Route> kept;
  std::vector<Route> gone;
  for (const auto& [v, r] : routes_) {
    if (v.device == device) {
      gone.push_back(r);
    } else {
      kept.emplace(v, r);
    }
  }
  if (gone.empty()) return absl::OkStatus();
  // The table first: measured faster than unbinding first (BM_MsiTeardown in the lab).
  std::swap(routes_, kept);
  if (absl::Status s = Push(); !s.ok()) {
    std::swap(routes_, kept);
    return fail(s);
  }
  for (size_t i = 0; i < gone.size(); ++i) {
    if (gone[i].masked) continue;  // No irqfd bound.
    if (absl::Status s = vm_.DeassignIrqfd(*gone[i].trigger, gone[i].gsi); !s.ok()) {
      // Back to how it was: the irqfds unbound so far bound again, the routes restored.
      for (size_t j = 0; j < i; ++j) {
        if (!gone[j].masked) (void)vm_.AssignIrqfd(*gone[j].trigger, gone[j].gsi);
      }
      std::swap(routes_, kept);
      (void)Push();
      return fail(s);
    }
  }
  for (const Route& r : gone) gsis_.Free(r.gsi);
  return absl::OkStatus();
}

}  // namespace vmmkit::irq
