#!/bin/sh
# A script check that passes: it prints a round-trip time of 1234 microseconds, and
# records its arguments (VIP, server, protocol, port, timeout) in $ULB_TEST_ARGS if set.
if [ -n "$ULB_TEST_ARGS" ]; then echo "$@" > "$ULB_TEST_ARGS"; fi
echo 1234
