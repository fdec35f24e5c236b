// File: acpi/aml.h
// -----------------------------------------------------------------------------
// A small encoder for ACPI Machine Language (ACPI 6.x, chapter 20): enough to describe devices to
// a guest OS in a DSDT (names, integers, strings, EISA IDs, packages, scopes, devices, methods
// that return a value, and resource templates). Each function returns the encoded bytes, so
// terms compose by nesting:
//
//   Aml dsdt = Scope("\\_SB_", {
//       Device("PCI0", {
//           Name("_HID", EisaId("PNP0A08")),
//           Name("_CRS", ResourceTemplate({WordBusNumber(0, 0), IoPort(0xcf8, 8)})),
//       }),
//   });
//
// Names are 1-4 characters of [A-Z0-9_] (padded with '_'), or dotted paths of such segments,
// optionally rooted with '\'. Invalid input is a programming error of the VMM, not guest input:
// it fails a CHECK-style assertion through std::abort with a message.

#ifndef VMMKIT_ACPI_AML_H_
#define VMMKIT_ACPI_AML_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace vmmkit::acpi {

using Aml = std::vector<uint8_t>;

// Concatenation of terms.
Aml Terms(std::initializer_list<Aml> terms);
Aml Terms(const std::vector<Aml>& terms);

// Data objects.
Aml Integer(uint64_t value);  // Shortest encoding: Zero, One, Byte, Word, DWord or QWord.
Aml String(absl::string_view value);
Aml EisaId(absl::string_view id);  // "PNP0A08" -> its 32-bit compressed form.
Aml Package(const std::vector<Aml>& elements);
Aml Buffer(const Aml& bytes);

// Named objects and scopes.
Aml NameString(absl::string_view path);
Aml Name(absl::string_view name, const Aml& value);
Aml Scope(absl::string_view path, const std::vector<Aml>& terms);
Aml Device(absl::string_view name, const std::vector<Aml>& terms);
// A method with no arguments whose body is `Return(value)`.
Aml MethodReturning(absl::string_view name, const Aml& value);
// A method taking `args` (0-7) arguments whose body is `body` (terms).
Aml Method(absl::string_view name, uint8_t args, bool serialized, const std::vector<Aml>& body);
// Notify (object, value): e.g. Notify (\_SB.PWRB, 0x80), "power button pressed".
Aml Notify(absl::string_view object, uint64_t value);
// Calls a method: the method's name followed by its arguments.
Aml Call(absl::string_view method, const std::vector<Aml>& args = {});

// Method bodies: locals, arguments and the few operators a VMM's methods need.
Aml Local(int n);  // Local0-Local7.
Aml Arg(int n);    // Arg0-Arg6.
Aml Store(const Aml& value, const Aml& target);
Aml And(const Aml& a, const Aml& b);  // Its result as a value (no target).
Aml If(const Aml& predicate, const std::vector<Aml>& body);

// Hardware registers: an OperationRegion and its fields (in order, from the region's start).
enum class RegionSpace : uint8_t { kSystemMemory = 0, kSystemIo = 1 };
Aml OperationRegion(absl::string_view name, RegionSpace space, uint64_t offset, uint64_t length);
struct FieldUnit {
  std::string name;  // A 1-4 character name segment.
  uint8_t bits;      // 1-63.
};
// Field (region, DWordAcc, NoLock, Preserve) { units }.
Aml Field(absl::string_view region, const std::vector<FieldUnit>& units);

// Resource descriptors for ResourceTemplate.
Aml IoPort(uint16_t base, uint8_t length);  // I/O (Decode16, fixed base).
Aml IrqNoFlags(uint8_t irq);                // IRQ, edge-triggered, active-high.
// Extended Interrupt descriptor for one GSI: ResourceConsumer, exclusive.
Aml Interrupt(uint32_t gsi, bool edge, bool active_low);
Aml WordBusNumber(uint16_t min, uint16_t max);
Aml WordIo(uint16_t min, uint16_t max);
Aml DWordMemory(uint32_t min, uint32_t max, bool cacheable);
Aml QWordMemory(uint64_t min, uint64_t max, bool cacheable);
// A Buffer holding the descriptors followed by an End Tag.
Aml ResourceTemplate(const std::vector<Aml>& descriptors);

// PkgLength encoding of a package whose contents are `content_length` bytes (exposed for tests).
Aml PkgLength(size_t content_length);

}  // namespace vmmkit::acpi

#endif  // VMMKIT_ACPI_AML_H_
