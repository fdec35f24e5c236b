#include "kvm/long_mode.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace vmmkit::kvm {
namespace {

constexpr uint64_t kPtePresent = 1, kPteWrite = 2, kPteLarge = 0x80;
constexpr uint64_t kCr0Pe = 1, kCr0Mp = 1 << 1, kCr0Et = 1 << 4, kCr0Ne = 1 << 5,
                   kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1 << 5;
constexpr uint64_t kEferLme = 1 << 8, kEferLma = 1 << 10;

// Flat descriptors: 64-bit code (L=1), and 4 GiB read/write data.
constexpr uint64_t kGdt[] = {0, 0x00af9a000000ffff, 0x00cf92000000ffff};
// Flat descriptors: 32-bit code (D=1), 4 GiB read/write data, and a busy 32-bit TSS (base 0,
// limit 0x67) for TR, which PVH requires and VMX's guest-state checks need (KVM's reset TR
// differs between VMX and SVM).
constexpr uint64_t kGdt32[] = {0, 0x00cf9a000000ffff, 0x00cf92000000ffff, 0x0000008b00000067};
constexpr uint16_t kTssSelector = 0x18;

// A flat segment as its descriptor in kGdt (long) or kGdt32 describes it.
kvm_segment FlatSegment(uint16_t selector, bool code, bool long_mode = true) {
  kvm_segment s{};
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = code ? 0xb : 0x3;  // Execute/read accessed : read/write accessed.
  s.present = 1;
  s.s = 1;
  s.l = code && long_mode ? 1 : 0;
  s.db = code && long_mode ? 0 : 1;
  s.g = 1;
  return s;
}

}  // namespace

absl::Status EnterLongMode(const GuestMemory& memory, Vcpu& vcpu, const LongModeLayout& layout) {
  if (layout.identity_map_gib < 1 || layout.identity_map_gib > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("long mode: identity_map_gib must be 1..4, got ", layout.identity_map_gib));
  }
  RETURN_IF_ERROR(memory.WriteObj(layout.gdt, kGdt));
  const uint64_t pml4 = layout.page_tables.raw();
  const uint64_t pdpt = pml4 + 0x1000;
  RETURN_IF_ERROR(memory.WriteObj<uint64_t>(layout.page_tables, pdpt | kPtePresent | kPteWrite));
  for (uint64_t gib = 0; gib < layout.identity_map_gib; ++gib) {
    const uint64_t pd = pml4 + 0x2000 + gib * 0x1000;
    RETURN_IF_ERROR(
        memory.WriteObj<uint64_t>(GuestAddress(pdpt + gib * 8), pd | kPtePresent | kPteWrite));
    for (uint64_t i = 0; i < 512; ++i) {
      const uint64_t frame = (gib << 30) | (i << 21);
      RETURN_IF_ERROR(memory.WriteObj<uint64_t>(GuestAddress(pd + i * 8),
                                                frame | kPtePresent | kPteWrite | kPteLarge));
    }
  }
  ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  sregs.gdt.base = layout.gdt.raw();
  sregs.gdt.limit = sizeof(kGdt) - 1;
  sregs.cs = FlatSegment(kLongModeCodeSelector, /*code=*/true);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
      FlatSegment(kLongModeDataSelector, /*code=*/false);
  sregs.cr3 = pml4;
  sregs.cr4 |= kCr4Pae;
  sregs.cr0 |= kCr0Pe | kCr0Mp | kCr0Ne | kCr0Pg;
  sregs.efer |= kEferLme | kEferLma;
  return vcpu.SetSregs(sregs);
}

absl::Status EnterProtectedMode(const GuestMemory& memory, Vcpu& vcpu, GuestAddress gdt) {
  RETURN_IF_ERROR(memory.WriteObj(gdt, kGdt32));
  ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  sregs.gdt.base = gdt.raw();
  sregs.gdt.limit = sizeof(kGdt32) - 1;
  sregs.cs = FlatSegment(kLongModeCodeSelector, /*code=*/true, /*long_mode=*/false);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
      FlatSegment(kLongModeDataSelector, /*code=*/false, /*long_mode=*/false);
  sregs.tr =
      kvm_segment{.base = 0, .limit = 0x67, .selector = kTssSelector, .type = 0xb, .present = 1};
  sregs.cr0 = kCr0Pe | kCr0Et;
  sregs.cr3 = 0;
  sregs.cr4 = 0;
  sregs.efer = 0;
  return vcpu.SetSregs(sregs);
}

}  // namespace vmmkit::kvm
