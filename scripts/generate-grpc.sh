#!/usr/bin/env bash
# Regenerates Sources/Wire/Generated from Protos/ (the generated code is committed, so a normal
# build needs neither protoc nor the plugins). Needs protoc (apt: protobuf-compiler) and builds
# the two plugins from the same package versions the project depends on (~2 min, once).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${MEMSERVE_PLUGIN_DIR:-$root/.build-protoc-plugins}"
command -v protoc >/dev/null || sudo_apt=1
if [ "${sudo_apt:-0}" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y protobuf-compiler; else sudo apt-get install -y protobuf-compiler; fi
fi
mkdir -p "$tools/Sources/dummy"
cat > "$tools/Package.swift" <<'PKG'
// swift-tools-version:6.0
import PackageDescription
let package = Package(name: "plugins", dependencies: [
  .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
  .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
], targets: [.executableTarget(name: "dummy")])
PKG
echo 'print("plugins")' > "$tools/Sources/dummy/main.swift"
(cd "$tools" && swift build -c release --product protoc-gen-swift && swift build -c release --product protoc-gen-grpc-swift-2)
bin="$tools/.build/release"
out="$root/Sources/Wire/Generated"
mkdir -p "$out"
protoc --proto_path="$root/Protos" \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" --swift_out="$out" --swift_opt=Visibility=Public \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" --grpc-swift_out="$out" \
  --grpc-swift_opt=Visibility=Public,Server=true,Client=true \
  memserve/v1/instance.proto
echo "generated into $out"
