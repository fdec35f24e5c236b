// vmmctl: the command-line client of vmm's gRPC control plane (see vmm/vmmctl.h).
#include <iostream>
#include <string>
#include <vector>

#include "vmm/vmmctl.h"

int main(int argc, char** argv) {
  return vmmkit::vmm::RunVmmctl(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                std::cerr);
}
