#!/usr/bin/env bash
# Builds dist/clarion_<version>_amd64.deb from the static binary: /usr/bin/clarion, a commented
# /etc/clarion/config.toml (config.example.toml; a conffile, kept across upgrades), the hardened
# systemd unit, and maintainer scripts that create the `clarion` system user.
#   packaging/deb/build.sh [BINARY]   (default: build it with packaging/static.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BIN=${1:-$(packaging/static.sh | tail -n1)}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
install -D -m 0755 "$BIN" "$STAGE/usr/bin/clarion"
install -D -m 0640 config.example.toml "$STAGE/etc/clarion/config.toml"
install -D -m 0644 packaging/deb/clarion.service "$STAGE/lib/systemd/system/clarion.service"
install -D -m 0644 README.md "$STAGE/usr/share/doc/clarion/README.md"
install -d "$STAGE/DEBIAN"
install -m 0755 packaging/deb/postinst packaging/deb/prerm "$STAGE/DEBIAN/"
echo /etc/clarion/config.toml >"$STAGE/DEBIAN/conffiles"
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: clarion
Version: $VERSION
Section: net
Priority: optional
Architecture: amd64
Maintainer: Clarion developers <clarion@localhost>
Depends: adduser
Installed-Size: $(du -ks "$STAGE/usr" | cut -f1)
Description: real-time broadcast server speaking the Pusher Channels protocol
 Clarion serves Laravel Echo, pusher-js and the Pusher server SDKs unchanged, alone or as a
 cluster over Redis, with missed-message recovery for Echo clients.
CONTROL
mkdir -p dist
OUT=dist/clarion_${VERSION}_amd64.deb
dpkg-deb --root-owner-group --build "$STAGE" "$OUT" >/dev/null
echo "$OUT"
