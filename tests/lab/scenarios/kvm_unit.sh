# The unit tests that need a working /dev/kvm (skipped on machines without one), run in L1 where
# nested KVM works: each must pass with none of its cases skipped.
. /lab/lib.sh
for t in /lab/bin/*_test; do
  name=${t##*/}
  t0=$(uptime_cs)
  "$t" >/tmp/$name.out 2>&1
  rc=$?
  check "$name passed (exit $rc, $(( ($(uptime_cs) - t0) * 10 )) ms): $(grep -o '[0-9]* tests\? from [0-9]* test suites\? ran' /tmp/$name.out)" test $rc -eq 0
  [ $rc -eq 0 ] || grep -E "Failure|FAILED|error" /tmp/$name.out | head -n 20 | sed 's/^/  /'
  check "$name: no case skipped" sh -c "! grep -q '^\[  SKIPPED \]' /tmp/$name.out"
  grep '^\[  SKIPPED \]' /tmp/$name.out | head -n 5 | sed 's/^/  /'
done
finish
