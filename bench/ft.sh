#!/bin/sh
# The fault-tolerant pair's benchmark: throughput protected vs unprotected, log bandwidth,
# output latency, backup lag, failover gaps (kill, silence) and a kill soak.
#
#   bench/ft.sh [--build DIR] [--runs N] [--soak N] [--write]
#
# See bench/ft.py (what is measured, how) and docs/ft.md.
exec python3 "$(dirname "$0")/ft.py" "$@"
