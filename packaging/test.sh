#!/usr/bin/env bash
# The packages, checked as a user would meet them (run by scripts/test.sh, as root):
#  1. the static binary needs no shared library, and started alone in an empty directory made
#     its root (chroot) it answers /up — what the empty-base Dockerfile image relies on;
#  2. `clarion probe` (the image's HEALTHCHECK) says 0 for a ready server and 1 for none;
#  3. the .deb holds the binary, the commented config (a conffile), the systemd unit and the
#     maintainer scripts, installs with dpkg -i into a scratch root, and its unit passes
#     `systemd-analyze verify`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
fail() { echo "packaging/test.sh: $*" >&2; exit 1; }
WORK=$(mktemp -d)
PID=""
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== static binary"
BIN=$(packaging/static.sh | tail -n1)
file "$BIN" | grep -q -E 'statically linked|static-pie linked' || fail "$BIN is not statically linked: $(file "$BIN")"
if ldd "$BIN" 2>&1 | grep -q '=>'; then fail "$BIN needs shared libraries: $(ldd "$BIN")"; fi

echo "== in an empty root"
mkdir "$WORK/root"
cp "$BIN" "$WORK/root/clarion"
PORT=$(free_port)
chroot "$WORK/root" /clarion --host 127.0.0.1 --port "$PORT" --metrics-port 0 >"$WORK/chroot.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/up" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/chroot.log" >&2; fail "the binary exited in the empty root"; }
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/up" >/dev/null || fail "no /up from the empty root"
echo "== clarion probe"
"$BIN" probe "http://127.0.0.1:$PORT/ready" || fail "probe of a ready server did not exit 0"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
if "$BIN" probe "http://127.0.0.1:$PORT/ready" 2>/dev/null; then fail "probe of no server exited 0"; fi

echo "== .deb"
DEB=$(packaging/deb/build.sh "$BIN" | tail -n1)
CONTENTS=$(dpkg-deb --contents "$DEB")
for f in ./usr/bin/clarion ./etc/clarion/config.toml ./lib/systemd/system/clarion.service; do
    grep -q " $f\$" <<<"$CONTENTS" || fail "$DEB lacks $f"
done
INFO=$(dpkg-deb --info "$DEB")
grep -q 'Package: clarion' <<<"$INFO" || fail "no control file"
[[ $(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles) == /etc/clarion/config.toml ]] ||
    fail "the config is not a conffile"
mkdir -p "$WORK/target/var/lib/dpkg/info" "$WORK/target/var/lib/dpkg/updates"
touch "$WORK/target/var/lib/dpkg/status" "$WORK/target/var/lib/dpkg/available"
# Maintainer scripts run outside the chroot with DPKG_ROOT set, and then leave the system alone.
dpkg --root="$WORK/target" --force-depends --force-script-chrootless -i "$DEB" >/dev/null 2>&1 ||
    fail "dpkg -i into a scratch root failed"
[[ -x $WORK/target/usr/bin/clarion ]] || fail "dpkg did not install /usr/bin/clarion"
STATUS=$(dpkg --root="$WORK/target" -s clarion)
grep -q 'Status: install ok installed' <<<"$STATUS" || fail "not installed"
"$WORK/target/usr/bin/clarion" check-config "$WORK/target/etc/clarion/config.toml" >/dev/null ||
    fail "the installed config does not pass check-config"

echo "== systemd unit"
# verify resolves the unit against the installed tree: give that tree what a Debian system
# has around it (the standard targets, /bin/kill for ExecReload).
mkdir -p "$WORK/target/usr/lib/systemd/system" "$WORK/target/usr/bin"
cp /usr/lib/systemd/system/*.target "$WORK/target/usr/lib/systemd/system/" 2>/dev/null ||
    cp /lib/systemd/system/*.target "$WORK/target/usr/lib/systemd/system/"
cp /usr/bin/kill "$WORK/target/usr/bin/kill"
[[ -e $WORK/target/bin ]] || ln -s usr/bin "$WORK/target/bin"
systemd-analyze verify --root="$WORK/target" /lib/systemd/system/clarion.service 2>"$WORK/verify.log" || {
    cat "$WORK/verify.log" >&2; fail "systemd-analyze verify refused the unit"; }
if grep -v -E 'Failed to (open|load).*(dbus|/run/)|Cannot add dependency job' "$WORK/verify.log" | grep -q .; then
    cat "$WORK/verify.log" >&2
    fail "systemd-analyze verify complained"
fi
echo "== packaging checks passed"
