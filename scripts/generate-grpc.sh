#!/usr/bin/env bash
# Regenerates the Swift code of the KServe v2 gRPC service (Triton's
# `inference.GRPCInferenceService`) from Sources/HPSServer/GRPC/Proto/grpc_service.proto
# into Sources/HPSServer/GRPC/Generated. The output is committed: builds and CI
# never run protoc or build the plugins.
#
# Needs protoc (Debian: apt-get install -y protobuf-compiler) and the two plugins,
# built once outside the repository (a first build takes ~10 minutes on 2 cores):
#   PLUGINS=/work/scratch/protoc-plugins   # any folder outside the repository
#   mkdir -p $PLUGINS && cat > $PLUGINS/Package.swift <<'SWIFT'
#   // swift-tools-version: 6.0
#   import PackageDescription
#   let package = Package(name: "protoc-plugins", dependencies: [
#       .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
#       .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
#   ], targets: [])
#   SWIFT
#   (cd $PLUGINS && swift build -c release --product protoc-gen-swift \
#                && swift build -c release --product protoc-gen-grpc-swift-2)
# then: PLUGINS=$PLUGINS scripts/generate-grpc.sh
#
# The generated files are wrapped in `#if Serving`, so that a build without the
# Serving trait (the GPU machine's binary) compiles none of gRPC.
set -euo pipefail
cd "$(dirname "$0")/.."
plugins="${PLUGINS:-/work/scratch/protoc-plugins}/.build/release"
for plugin in protoc-gen-swift protoc-gen-grpc-swift-2; do
    [[ -x "$plugins/$plugin" ]] || { echo "no $plugin in $plugins; build the plugins as this script's header says" >&2; exit 1; }
done
command -v protoc >/dev/null || { echo "no protoc; apt-get install -y protobuf-compiler" >&2; exit 1; }

proto_dir=Sources/HPSServer/GRPC/Proto
out=Sources/HPSServer/GRPC/Generated
rm -rf "$out" && mkdir -p "$out"
protoc --proto_path="$proto_dir" \
    --plugin=protoc-gen-swift="$plugins/protoc-gen-swift" \
    --swift_out="$out" --swift_opt=Visibility=Public --swift_opt=UseAccessLevelOnImports=true \
    --plugin=protoc-gen-grpc-swift="$plugins/protoc-gen-grpc-swift-2" \
    --grpc-swift_out="$out" --grpc-swift_opt=Visibility=Public --grpc-swift_opt=UseAccessLevelOnImports=true \
    --grpc-swift_opt=Server=true --grpc-swift_opt=Client=true \
    grpc_service.proto
for file in "$out"/*.swift; do
    { echo "#if Serving"; cat "$file"; echo "#endif"; } > "$file.tmp" && mv "$file.tmp" "$file"
done
ls -l "$out"
