#!/bin/sh
# Prepare a self-contained build context for ./Dockerfile (FROM scratch, so no base image is pulled):
# a static binary built on this host, the host's CA bundle, and passwd/group naming UID/GID 65532.
#
# Usage: ./build-context.sh [OUT_DIR]     (default: build/context next to this script)
# Env:   VERSION (default 0.0.0-dev)  GOARCH (default: the host's)  CA_BUNDLE (default Debian's)
# Then:  docker build -t kyb-platform:$VERSION OUT_DIR
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/build/context"}
version=${VERSION:-0.0.0-dev}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

[ -r "$ca" ] || { echo "CA bundle $ca not found: install ca-certificates or set CA_BUNDLE" >&2; exit 1; }
mkdir -p "$out"
# The files are left read-only: remove them so a re-run can write them again.
rm -f "$out/kyb-platform" "$out/ca-certificates.crt" "$out/passwd" "$out/group" "$out/Dockerfile"

(cd "$here" && CGO_ENABLED=0 GOOS=linux GOARCH="${GOARCH:-$(go env GOARCH)}" \
	go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out/kyb-platform" .)
cp "$ca" "$out/ca-certificates.crt"
printf 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"$out/passwd"
printf 'nonroot:x:65532:\n' >"$out/group"
cp "$here/Dockerfile" "$out/Dockerfile"
chmod 0555 "$out/kyb-platform"
chmod 0444 "$out/ca-certificates.crt" "$out/passwd" "$out/group" "$out/Dockerfile"
echo "$out"
