# Sourced by shell tests. skip_test REASON: reports the test as skipped, not passed, and exits 0.
# Bazel takes a test's result from the JUnit XML at $XML_OUTPUT_FILE when the test writes one, so
# the skip reaches tools/test's count (tools/internal/test_summary.py reads <skipped/>).
skip_test() {
  echo "SKIP: $1"
  if [ -n "${XML_OUTPUT_FILE:-}" ]; then
    local name=${TEST_TARGET:-$0}
    local reason
    reason=$(printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/"/\&quot;/g')
    cat > "$XML_OUTPUT_FILE" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="$name" tests="1" failures="0" errors="0" skipped="1">
<testcase name="$name" status="notrun"><skipped message="$reason"/></testcase>
</testsuite></testsuites>
XML
  fi
  exit 0
}
