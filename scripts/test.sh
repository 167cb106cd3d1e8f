#!/usr/bin/env bash
# The test command. Many suites start engines, instance processes and etcd; run all at once on
# a 2-core machine they starve Swift's cooperative threads for seconds at a time, and leases,
# keep-alives and join deadlines in the tests then run out. A bounded number of tests at a
# time keeps the suite fast and every timing it depends on honest. Arguments go to `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH="${SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH:-4}"
exec swift test "$@"
