// viommu_shadow: runs examples/viommu_shadow.h on the real kernel.
//   viommu_shadow GROUP BDF [--edu]
#include <cstdlib>
#include <iostream>
#include <string>

#include "examples/viommu_shadow.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: viommu_shadow GROUP BDF [--edu]\n";
    return 2;
  }
  vmmkit::examples::ViommuShadowOptions options{
      .group = std::atoi(argv[1]),
      .bdf = argv[2],
      .edu_dma = argc > 3 && std::string(argv[3]) == "--edu",
  };
  absl::Status s = vmmkit::examples::RunViommuShadow(options, std::cout);
  if (!s.ok()) {
    std::cerr << "viommu_shadow: " << s << "\n";
    return 1;
  }
  std::cout << "viommu_shadow: done\n";
  return 0;
}
