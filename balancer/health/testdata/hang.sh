#!/bin/sh
# A script check that hangs past any test timeout, with a child holding its output open.
sleep 30
echo 1
