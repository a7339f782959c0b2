#!/bin/sh
# A script check that reports a failure the ILB way: -1, exit status 0.
echo -1
