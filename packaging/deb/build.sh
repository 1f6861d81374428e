#!/bin/sh
# Builds exfilguard_<version>_<arch>.deb with dpkg-deb alone.
#
#   packaging/deb/build.sh BINARY VERSION ARCH OUTDIR
#
# BINARY is a static linux/ARCH exfilguard binary (make deb builds it),
# VERSION the version it was stamped with (git describe), ARCH amd64 or
# arm64. Prints the path of the package. DEB_VERSION overrides the Debian
# version derived from VERSION, DEB_MAINTAINER the Maintainer field.
set -eu

if [ $# -ne 4 ]; then
	echo "usage: $0 BINARY VERSION ARCH OUTDIR" >&2
	exit 2
fi
binary=$1 version=$2 arch=$3 outdir=$4
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

# A Debian native version has no '-' and must start with a digit (deb-version(7)):
# v1.2.3 → 1.2.3, v1.2.3-4-gabc1234-dirty → 1.2.3+4+gabc1234+dirty, and
# an untagged 6b64936-dirty → 0.0.0~git6b64936+dirty, which sorts before
# any release.
if [ -z "${DEB_VERSION:-}" ]; then
	DEB_VERSION=$(printf '%s' "${version#v}" | tr -- '-' '+')
	# A release is digits and a dot; anything else is a commit hash, which
	# may start with a digit too.
	if ! printf '%s' "$DEB_VERSION" | grep -Eq '^[0-9]+[.]'; then
		DEB_VERSION="0.0.0~git$DEB_VERSION"
	fi
fi
maintainer=${DEB_MAINTAINER:-ExfilGuard maintainers <maintainers@exfilguard.invalid>}

# The binary must be for ARCH: e_machine, at offset 18 of the ELF header.
case $arch in
amd64) machine="3e 00" ;;
arm64) machine="b7 00" ;;
*)
	echo "$0: unsupported architecture $arch (amd64 or arm64)" >&2
	exit 2
	;;
esac
if [ "$(od -An -tx1 -j18 -N2 "$binary" | tr -s ' ' | sed 's/^ //; s/ $//')" != "$machine" ]; then
	echo "$0: $binary is not a linux/$arch executable" >&2
	exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
umask 022
chmod 0755 "$stage" # mktemp made it 0700; it becomes the package's "./"

install -D -m 0755 "$binary" "$stage/usr/sbin/exfilguard"
# 0640: the configuration names internal hosts; postinst gives the
# service group read access.
install -d -m 0750 "$stage/etc/exfilguard" "$stage/etc/exfilguard/clients.d" "$stage/etc/exfilguard/policies.d"
for f in exfilguard.toml clients.toml policies.toml; do
	install -m 0640 "$here/etc/exfilguard/$f" "$stage/etc/exfilguard/$f"
done
install -D -m 0644 "$here/exfilguard.service" "$stage/usr/lib/systemd/system/exfilguard.service"
# The documentation an auditor reads against this very binary.
install -d -m 0755 "$stage/usr/share/doc/exfilguard"
install -m 0644 "$here/copyright" "$repo/README.md" "$repo"/docs/*.md "$stage/usr/share/doc/exfilguard/"

install -d -m 0755 "$stage/DEBIAN"
size=$(du -sk "$stage" | cut -f1)
sed -e "s|@VERSION@|$DEB_VERSION|" -e "s|@ARCH@|$arch|" \
	-e "s|@MAINTAINER@|$maintainer|" -e "s|@INSTALLED_SIZE@|$size|" \
	"$here/control" >"$stage/DEBIAN/control"
chmod 0644 "$stage/DEBIAN/control"
install -m 0644 "$here/conffiles" "$stage/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"

# Reproducible: file times from the last commit (reproducible-builds.org
# SOURCE_DATE_EPOCH), which dpkg-deb also uses for the archive members.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || true)
fi
if [ -n "$SOURCE_DATE_EPOCH" ]; then
	export SOURCE_DATE_EPOCH
	find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
fi

mkdir -p "$outdir"
deb="$outdir/exfilguard_${DEB_VERSION}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
