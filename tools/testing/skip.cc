#include "tools/testing/skip.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace vmmkit {
namespace {

std::string XmlEscaped(const char* text) {
  std::string out;
  for (const char* c = text; *c != '\0'; ++c) {
    switch (*c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += *c;
    }
  }
  return out;
}

}  // namespace

void SkipTest(const char* reason) {
  std::fprintf(stderr, "SKIP: %s\n", reason);
  const char* xml = std::getenv("XML_OUTPUT_FILE");
  const char* target = std::getenv("TEST_TARGET");
  const std::string name = XmlEscaped(target != nullptr ? target : "test");
  if (xml != nullptr && *xml != '\0') {
    if (std::FILE* f = std::fopen(xml, "w")) {
      std::fprintf(f,
                   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<testsuites><testsuite name=\"%s\" tests=\"1\" skipped=\"1\">\n"
                   "<testcase name=\"%s\" status=\"notrun\"><skipped message=\"%s\"/></testcase>\n"
                   "</testsuite></testsuites>\n",
                   name.c_str(), name.c_str(), XmlEscaped(reason).c_str());
      std::fclose(f);
    }
  }
  std::exit(0);
}

}  // namespace vmmkit
