#!/usr/bin/env bash
# The long fuzz run of the HTTP edge (the test suite runs a short one): N seeded requests
# (default 20000) through the server over a synthetic model, plus N/8 broken-HTTP requests
# on a real socket. Fails on any 5xx, hang, crash or 4xx without OpenAI's error body, and
# prints the seed of the first failing case (add it to FuzzTests.regressionSeeds).
#   bash scripts/fuzz-http.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${1:-20000}
swift build --build-tests
MEMSERVE_FUZZ_CASES=$CASES swift test --skip-build --filter ServerTests.FuzzTests
