#!/bin/sh
# Builds the release binaries and their checksums, and checks them.
#
#   packaging/release.sh VERSION DIST
#
# writes DIST/exfilguard_<version>_linux_amd64, ..._linux_arm64 (static,
# CGO_ENABLED=0, -trimpath, stamped with VERSION) and DIST/SHA256SUMS,
# where <version> is VERSION without a leading "v". GO names the go
# command (default go).
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 VERSION DIST" >&2
	exit 2
fi
version=$1 dist=$2
go=${GO:-go}
cd "$(dirname "$0")/.."

mkdir -p "$dist"
names=""
for arch in amd64 arm64; do
	name="exfilguard_${version#v}_linux_$arch"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$go" build -trimpath \
		-ldflags "-s -w -X main.version=$version" -o "$dist/$name" .
	# The build settings recorded in the binary say it has no cgo.
	if ! "$go" version -m "$dist/$name" | grep -q 'CGO_ENABLED=0'; then
		echo "$0: $name was not built with CGO_ENABLED=0" >&2
		exit 1
	fi
	names="$names $name"
done

cd "$dist"
# shellcheck disable=SC2086 # names holds plain file names, split on purpose
sha256sum $names >SHA256SUMS
sha256sum -c SHA256SUMS

# The binary for this machine, if there is one, must run and report VERSION.
host="exfilguard_${version#v}_linux_$("$go" env GOHOSTARCH)"
if [ "$(uname -s)" = Linux ] && [ -f "$host" ]; then
	got=$(./"$host" --version)
	if [ "$got" != "exfilguard $version" ]; then
		echo "$0: ./$host --version printed \"$got\", want \"exfilguard $version\"" >&2
		exit 1
	fi
	echo "$got"
fi
