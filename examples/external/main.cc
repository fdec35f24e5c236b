// The README's example of using one vmmkit library from another workspace, as a user writes it.
#include <cstdint>
#include <iostream>

#include "memory/guest_memory.h"

int main() {
  auto mem = vmmkit::GuestMemory::CreateRam({{vmmkit::GuestAddress(0), 1 << 20}});
  if (!mem.ok()) {
    std::cout << mem.status() << "\n";
    return 1;
  }
  auto value = mem->ReadObj<uint32_t>(vmmkit::GuestAddress(0xffffe));
  std::cout << value.status() << "\n";
  return value.ok() ? 1 : 0;
}
