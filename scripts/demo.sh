#!/usr/bin/env bash
# The README's first command: builds Portcullis and runs `portcullis demo` (the
# built-in lab, the switch on it, a report). Needs root (the lab is made of network
# namespaces). The build needs protoc (etcd's client, for clusters, compiles etcd's
# protocol files): installed from Debian's protobuf-compiler when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
  echo "installing protobuf-compiler (protoc, to build etcd's client)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends protobuf-compiler
fi
exec cargo run --release -p portcullis --bin portcullis -- demo "$@"
