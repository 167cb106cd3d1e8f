#!/usr/bin/env bash
# The long fuzz runs of every input MemServe takes (the test suite runs short ones): GGUF files,
# tokenizer text, gRPC messages between instances, and the HTTP edge (scripts/fuzz-http.sh).
# Counts come from the environment; a failure prints the seed of its case (add it to the
# suite's regressionSeeds once fixed).
#   GGUF=200000 TOKENIZER=20000 GRPC=5000 HTTP=20000 bash scripts/fuzz-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
MEMSERVE_FUZZ_GGUF_CASES=${GGUF:-100000} swift test --skip-build --filter GGUFTests.GGUFFuzzTests
MEMSERVE_FUZZ_TOKENIZER_CASES=${TOKENIZER:-10000} swift test --skip-build --filter TokenizerTests.TokenizerFuzzTests
MEMSERVE_FUZZ_GRPC_CASES=${GRPC:-5000} swift test --skip-build --filter ClusterTests.GRPCFuzzTests
if [ "${HTTP:-20000}" != 0 ]; then
    MEMSERVE_FUZZ_CASES=${HTTP:-20000} swift test --skip-build --filter ServerTests.FuzzTests
fi
