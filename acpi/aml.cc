#include "acpi/aml.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_split.h"

namespace vmmkit::acpi {
namespace {

constexpr uint8_t kZeroOp = 0x00, kOneOp = 0x01, kOnesOp = 0xff;
constexpr uint8_t kNameOp = 0x08, kBytePrefix = 0x0a, kWordPrefix = 0x0b, kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d, kQWordPrefix = 0x0e, kScopeOp = 0x10, kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12, kMethodOp = 0x14, kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f, kRootChar = 0x5c, kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82, kReturnOp = 0xa4, kNotifyOp = 0x86;
constexpr uint8_t kLocal0Op = 0x60, kArg0Op = 0x68, kStoreOp = 0x70, kAndOp = 0x7b, kIfOp = 0xa0;
constexpr uint8_t kOpRegionOp = 0x80, kFieldOp = 0x81, kNullName = 0x00;

[[noreturn]] void Fail(const char* what, absl::string_view arg) {
  std::fprintf(stderr, "acpi/aml: %s: \"%.*s\"\n", what, static_cast<int>(arg.size()), arg.data());
  std::abort();
}

void Append(Aml& out, const Aml& more) { out.insert(out.end(), more.begin(), more.end()); }

void AppendLe(Aml& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

Aml NameSeg(absl::string_view seg) {
  if (seg.empty() || seg.size() > 4) Fail("name segment must be 1-4 characters", seg);
  Aml out;
  for (char c : seg) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) Fail("name segment characters must be A-Z, 0-9 or _", seg);
    out.push_back(static_cast<uint8_t>(c));
  }
  if (out[0] >= '0' && out[0] <= '9') Fail("name segment must not start with a digit", seg);
  while (out.size() < 4) out.push_back('_');
  return out;
}

// Op PkgLength Contents.
Aml WithPkgLength(std::initializer_list<uint8_t> op, const Aml& contents) {
  Aml out(op);
  Append(out, PkgLength(contents.size()));
  Append(out, contents);
  return out;
}

}  // namespace

Aml Terms(std::initializer_list<Aml> terms) { return Terms(std::vector<Aml>(terms)); }

Aml Terms(const std::vector<Aml>& terms) {
  Aml out;
  for (const Aml& t : terms) Append(out, t);
  return out;
}

Aml PkgLength(size_t content_length) {
  // The encoded length includes the PkgLength bytes themselves.
  for (int extra = 0; extra <= 3; ++extra) {
    const size_t total = content_length + 1 + static_cast<size_t>(extra);
    if (extra == 0 && total < 0x40) return {static_cast<uint8_t>(total)};
    if (extra > 0 && total < (size_t{1} << (4 + 8 * static_cast<size_t>(extra)))) {
      Aml out = {static_cast<uint8_t>((static_cast<size_t>(extra) << 6) | (total & 0xf))};
      for (int i = 0; i < extra; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
      return out;
    }
  }
  Fail("package too large for PkgLength", "");
}

Aml Integer(uint64_t value) {
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  if (value == ~uint64_t{0}) return {kOnesOp};
  Aml out;
  if (value <= 0xff) {
    out = {kBytePrefix};
    AppendLe(out, value, 1);
  } else if (value <= 0xffff) {
    out = {kWordPrefix};
    AppendLe(out, value, 2);
  } else if (value <= 0xffffffff) {
    out = {kDWordPrefix};
    AppendLe(out, value, 4);
  } else {
    out = {kQWordPrefix};
    AppendLe(out, value, 8);
  }
  return out;
}

Aml String(absl::string_view value) {
  Aml out = {kStringPrefix};
  for (char c : value) {
    if (c == '\0' || static_cast<unsigned char>(c) > 0x7f)
      Fail("AML strings are ASCII without NUL", value);
    out.push_back(static_cast<uint8_t>(c));
  }
  out.push_back(0);
  return out;
}

Aml EisaId(absl::string_view id) {
  // Three letters (5 bits each, 'A' = 1) and four hex digits, stored big-endian.
  if (id.size() != 7) Fail("EISA ID must be 3 letters and 4 hex digits", id);
  uint32_t v = 0;
  for (size_t i = 0; i < 3; ++i) {
    if (id[i] < 'A' || id[i] > 'Z') Fail("EISA ID must start with 3 capital letters", id);
    v = (v << 5) | static_cast<uint32_t>(id[i] - 'A' + 1);
  }
  for (size_t i = 3; i < 7; ++i) {
    const char c = id[i];
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) Fail("EISA ID must end with 4 hex digits", id);
    v = (v << 4) | static_cast<uint32_t>(digit);
  }
  const uint32_t be = ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >> 8) & 0xff00) | (v >> 24);
  Aml out = {kDWordPrefix};
  AppendLe(out, be, 4);
  return out;
}

Aml Package(const std::vector<Aml>& elements) {
  if (elements.size() > 255) Fail("package has more than 255 elements", "");
  Aml contents = {static_cast<uint8_t>(elements.size())};
  Append(contents, Terms(elements));
  return WithPkgLength({kPackageOp}, contents);
}

Aml Buffer(const Aml& bytes) {
  Aml contents = Integer(bytes.size());
  Append(contents, bytes);
  return WithPkgLength({kBufferOp}, contents);
}

Aml NameString(absl::string_view path) {
  Aml out;
  if (!path.empty() && path[0] == '\\') {
    out.push_back(kRootChar);
    path.remove_prefix(1);
  }
  if (path.empty()) {
    out.push_back(0x00);  // NullName: the path is just the root (or nothing).
    return out;
  }
  std::vector<absl::string_view> segs = absl::StrSplit(path, '.');
  if (segs.size() == 2) {
    out.push_back(kDualNamePrefix);
  } else if (segs.size() > 2) {
    if (segs.size() > 255) Fail("name path too long", path);
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segs.size()));
  }
  for (absl::string_view s : segs) Append(out, NameSeg(s));
  return out;
}

Aml Name(absl::string_view name, const Aml& value) {
  Aml out = {kNameOp};
  Append(out, NameString(name));
  Append(out, value);
  return out;
}

Aml Scope(absl::string_view path, const std::vector<Aml>& terms) {
  Aml contents = NameString(path);
  Append(contents, Terms(terms));
  return WithPkgLength({kScopeOp}, contents);
}

Aml Device(absl::string_view name, const std::vector<Aml>& terms) {
  Aml contents = NameString(name);
  Append(contents, Terms(terms));
  return WithPkgLength({kExtOpPrefix, kDeviceOp}, contents);
}

Aml MethodReturning(absl::string_view name, const Aml& value) {
  Aml contents = NameString(name);
  contents.push_back(0);  // MethodFlags: no arguments, not serialized.
  contents.push_back(kReturnOp);
  Append(contents, value);
  return WithPkgLength({kMethodOp}, contents);
}

Aml Method(absl::string_view name, uint8_t args, bool serialized, const std::vector<Aml>& body) {
  if (args > 7) Fail("a method takes at most 7 arguments", name);
  Aml contents = NameString(name);
  contents.push_back(static_cast<uint8_t>(args | (serialized ? 0x08 : 0)));  // MethodFlags.
  for (const Aml& term : body) Append(contents, term);
  return WithPkgLength({kMethodOp}, contents);
}

Aml Notify(absl::string_view object, uint64_t value) {
  Aml out = {kNotifyOp};
  Append(out, NameString(object));
  Append(out, Integer(value));
  return out;
}

Aml Call(absl::string_view method, const std::vector<Aml>& args) {
  Aml out = NameString(method);
  for (const Aml& a : args) Append(out, a);
  return out;
}

Aml Local(int n) {
  if (n < 0 || n > 7) Fail("there are Local0-Local7", std::to_string(n));
  return {static_cast<uint8_t>(kLocal0Op + n)};
}

Aml Arg(int n) {
  if (n < 0 || n > 6) Fail("there are Arg0-Arg6", std::to_string(n));
  return {static_cast<uint8_t>(kArg0Op + n)};
}

Aml Store(const Aml& value, const Aml& target) {
  Aml out = {kStoreOp};
  Append(out, value);
  Append(out, target);
  return out;
}

Aml And(const Aml& a, const Aml& b) {
  Aml out = {kAndOp};
  Append(out, a);
  Append(out, b);
  out.push_back(kNullName);  // No target: the result is the operator's value.
  return out;
}

Aml If(const Aml& predicate, const std::vector<Aml>& body) {
  Aml contents = predicate;
  for (const Aml& term : body) Append(contents, term);
  return WithPkgLength({kIfOp}, contents);
}

Aml OperationRegion(absl::string_view name, RegionSpace space, uint64_t offset, uint64_t length) {
  Aml out = {kExtOpPrefix, kOpRegionOp};
  Append(out, NameString(name));
  out.push_back(static_cast<uint8_t>(space));
  Append(out, Integer(offset));
  Append(out, Integer(length));
  return out;
}

Aml Field(absl::string_view region, const std::vector<FieldUnit>& units) {
  Aml contents = NameString(region);
  contents.push_back(0x03);  // DWordAcc, NoLock, Preserve.
  for (const FieldUnit& u : units) {
    if (u.bits == 0 || u.bits > 63) Fail("a field unit is 1-63 bits here", u.name);
    Append(contents, NameSeg(u.name));
    contents.push_back(u.bits);  // FieldLength: one byte below 64.
  }
  return WithPkgLength({kExtOpPrefix, kFieldOp}, contents);
}

Aml Interrupt(uint32_t gsi, bool edge, bool active_low) {
  // Large item 0x89, length 6: flags, one interrupt, its number (no resource source).
  Aml out = {0x89, 0x06, 0x00};
  out.push_back(static_cast<uint8_t>(0x01 | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0)));
  out.push_back(1);
  AppendLe(out, gsi, 4);
  return out;
}

Aml IoPort(uint16_t base, uint8_t length) {
  Aml out = {0x47, 0x01};  // I/O port descriptor, Decode16.
  AppendLe(out, base, 2);  // Minimum base.
  AppendLe(out, base, 2);  // Maximum base.
  out.push_back(1);        // Alignment.
  out.push_back(length);
  return out;
}

Aml IrqNoFlags(uint8_t irq) {
  if (irq > 15) Fail("IRQ descriptors cover IRQ 0-15", "");
  Aml out = {0x22};
  AppendLe(out, uint64_t{1} << irq, 2);
  return out;
}

namespace {

// Word/DWord/QWord Address Space Descriptors share one layout: type, general flags,
// type-specific flags, then granularity, min, max, translation offset, length (`width` bytes each).
Aml AddressSpace(uint8_t tag, int width, uint8_t resource_type, uint8_t type_flags, uint64_t min,
                 uint64_t max) {
  Aml body = {resource_type, 0x0c /* MinFixed | MaxFixed, producer+consumer */, type_flags};
  AppendLe(body, 0, width);  // Granularity.
  AppendLe(body, min, width);
  AppendLe(body, max, width);
  AppendLe(body, 0, width);  // Translation offset.
  AppendLe(body, max - min + 1, width);
  Aml out = {tag};
  AppendLe(out, body.size(), 2);
  Append(out, body);
  return out;
}

}  // namespace

Aml WordBusNumber(uint16_t min, uint16_t max) { return AddressSpace(0x88, 2, 2, 0, min, max); }

Aml WordIo(uint16_t min, uint16_t max) {
  return AddressSpace(0x88, 2, 1, 0x03 /* ISA and non-ISA ranges */, min, max);
}

Aml DWordMemory(uint32_t min, uint32_t max, bool cacheable) {
  return AddressSpace(0x87, 4, 0, cacheable ? 0x03 : 0x01 /* read-write */, min, max);
}

Aml QWordMemory(uint64_t min, uint64_t max, bool cacheable) {
  return AddressSpace(0x8a, 8, 0, cacheable ? 0x03 : 0x01, min, max);
}

Aml ResourceTemplate(const std::vector<Aml>& descriptors) {
  Aml bytes = Terms(descriptors);
  bytes.push_back(0x79);  // End Tag ...
  bytes.push_back(0x00);  // ... with checksum 0 ("treated as correct").
  return Buffer(bytes);
}

}  // namespace vmmkit::acpi
