// A main() for fuzz targets outside --config=fuzz: runs every file named on the command line, then
// a fixed sequence of pseudo-random inputs, through LLVMFuzzerTestOneInput. It makes each fuzz
// entry point a deterministic regression test under the normal and sanitizer configurations.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "fuzz replay: cannot open %s\n", argv[i]);
      return 1;
    }
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++files;
  }
  constexpr int kRandomInputs = 2000;
  std::mt19937_64 rng(0x766d6d6b6974);  // Fixed seed: the run is reproducible.
  std::vector<uint8_t> buf;
  for (int i = 0; i < kRandomInputs; ++i) {
    buf.resize(rng() % 512);
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
  }
  std::printf("fuzz replay: %d corpus files and %d random inputs ran cleanly\n", files,
              kRandomInputs);
  return 0;
}
