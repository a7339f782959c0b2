#!/bin/sh
# A script check that prints an RTT but exits non-zero: a failure.
echo 10
echo "backend said no" >&2
exit 3
