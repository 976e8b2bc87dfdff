#!/usr/bin/env bash
# Tests the packages `make package` built (target/package/*.deb, *.rpm) on this machine:
# installs the DEB with dpkg, checks its files and conffiles, runs the installed
# `crust version` and `crust config`, starts the installed daemon on temp dirs with a
# NOTIFY_SOCKET to see the sd_notify READY/RELOADING/STOPPING sequence, lists the RPM, and
# purges the DEB again (also when a check fails). Needs root. Prints "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "package-test: needs root (dpkg -i)" >&2
    exit 1
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
deb=$(ls target/package/crust_"$version"-*_"$(dpkg --print-architecture)".deb)
rpm=$(ls target/package/crust-"$version"-*."$(uname -m)".rpm)

passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "package-test: FAILED: $what ($*)" >&2
    fi
}

cni_before=$( (ls /etc/cni/net.d/*.conflist /etc/cni/net.d/*.conf /etc/cni/net.d/*.json 2>/dev/null || true) | wc -l)
daemon_pid=""
work=$(mktemp -d /tmp/crust-package-test.XXXXXX)
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -KILL "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if dpkg -s crust >/dev/null 2>&1; then
        dpkg --purge crust >/dev/null 2>&1 || echo "package-test: dpkg --purge crust failed" >&2
    fi
    umount -R "$work/run" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A crust package left behind by an interrupted run would make dpkg -i an upgrade.
if dpkg -s crust >/dev/null 2>&1; then
    dpkg --purge crust >/dev/null
fi

# --- the DEB as a file ---
info=$(dpkg-deb --info "$deb")
check "deb depends on runc | crun" grep -q 'Depends:.*runc | crun, containernetworking-plugins' <<<"$info"
check "deb conffiles" diff <(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles) contrib/packaging/deb/conffiles

# --- install ---
check "dpkg -i" dpkg -i "$deb"
for f in /usr/bin/crust /usr/bin/crust-monitor /usr/bin/crust-pause; do
    check "$f executable" test -x "$f"
done
for f in /usr/lib/systemd/system/crust.service /etc/crust/registries.conf \
    /usr/share/crust/cni/10-crust-bridge.conflist /usr/share/man/man8/crust.8.gz \
    /usr/share/man/man5/crust.toml.5.gz /usr/share/bash-completion/completions/crust \
    /usr/share/zsh/vendor-completions/_crust /usr/share/fish/vendor_completions.d/crust.fish \
    /etc/default/crust /usr/share/doc/crust/copyright; do
    check "$f installed" test -f "$f"
done
check "crust.conf.d dir" test -d /etc/crust/crust.conf.d
check "/etc/crust/crust.toml is contrib/config/crust.toml" cmp /etc/crust/crust.toml contrib/config/crust.toml
check "unit file" cmp /usr/lib/systemd/system/crust.service contrib/systemd/crust.service
if command -v systemd-analyze >/dev/null; then
    # Works without systemd as PID 1; --man=no: the man pages need no man-db here.
    check "systemd-analyze verify crust.service" systemd-analyze verify --man=no \
        /usr/lib/systemd/system/crust.service
fi
conffiles=$(dpkg-query -W -f='${Conffiles}' crust)
check "crust.toml is a conffile" grep -q '/etc/crust/crust.toml' <<<"$conffiles"
check "registries.conf is a conffile" grep -q '/etc/crust/registries.conf' <<<"$conffiles"
check "man page crust.8" grep -q '^\.TH crust 8' <(zcat /usr/share/man/man8/crust.8.gz)
check "man page crust.toml.5 documents keys" grep -q 'max_concurrent_downloads' <(zcat /usr/share/man/man5/crust.toml.5.gz)
if [ "$cni_before" -eq 0 ]; then
    check "postinst installed the CNI network" cmp /etc/cni/net.d/10-crust-bridge.conflist \
        contrib/cni/10-crust-bridge.conflist
fi

# --- the installed binary ---
check "crust version" grep -q "^crust version $version" <(/usr/bin/crust version)
/usr/bin/crust config >"$work/config.toml" 2>"$work/config.err" || true
check "crust config reads the packaged config" cmp "$work/config.toml" contrib/config/crust.toml
check "packaged registries.conf in effect" grep -q 'registries_conf = "/etc/crust/registries.conf"' "$work/config.toml"

# --- the installed daemon with sd_notify (what systemd's Type=notify sees) ---
sock="$work/notify.sock"
python3 - "$sock" >"$work/notify.log" 2>&1 <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
try:
    while True:
        msg = s.recv(4096).decode()
        print(msg.split("\n")[0], flush=True)
        if msg.startswith("STOPPING=1"):
            break
except socket.timeout:
    pass
EOF
listener=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
mkdir -p "$work/run"
NOTIFY_SOCKET="$sock" /usr/bin/crust --config /etc/crust/crust.toml --root "$work/root" \
    --runroot "$work/run" --listen "$work/run/crust.sock" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 300); do grep -q READY=1 "$work/notify.log" 2>/dev/null && break; sleep 0.1; done
check "daemon sent READY=1" grep -qx READY=1 "$work/notify.log"
check "installed crust ctl version" /usr/bin/crust ctl --endpoint "unix://$work/run/crust.sock" version
kill -HUP "$daemon_pid"
for _ in $(seq 100); do [ "$(grep -c READY=1 "$work/notify.log")" -ge 2 ] && break; sleep 0.1; done
check "SIGHUP sent RELOADING=1 then READY=1" test "$(tr '\n' ' ' <"$work/notify.log")" = "READY=1 RELOADING=1 READY=1 "
kill -TERM "$daemon_pid"
check "daemon exits 0 on SIGTERM" wait "$daemon_pid"
daemon_pid=""
wait "$listener" || true
check "SIGTERM sent STOPPING=1" grep -qx STOPPING=1 "$work/notify.log"
check "socket removed" test ! -e "$work/run/crust.sock"

# --- the RPM (listed, not installed: this is a Debian machine) ---
rpm_files=$(rpm -qlp "$rpm" 2>/dev/null)
for f in /usr/bin/crust /usr/bin/crust-monitor /usr/bin/crust-pause /usr/lib/systemd/system/crust.service \
    /etc/crust/crust.toml /etc/crust/registries.conf /etc/sysconfig/crust \
    /usr/share/crust/cni/10-crust-bridge.conflist /usr/share/man/man8/crust.8.gz; do
    check "rpm contains $f" grep -qx "$f" <<<"$rpm_files"
done
rpm_config=$(rpm -qcp "$rpm" 2>/dev/null)
check "rpm %config crust.toml" grep -qx /etc/crust/crust.toml <<<"$rpm_config"
check "rpm %config registries.conf" grep -qx /etc/crust/registries.conf <<<"$rpm_config"
rpm_requires=$(rpm -qp --requires "$rpm" 2>/dev/null)
check "rpm requires a runtime" grep -q '(runc or crun)' <<<"$rpm_requires"
check "rpm requires CNI plugins" grep -qx containernetworking-plugins <<<"$rpm_requires"
echo "package-test: RPM files:"
sed 's/^/  /' <<<"$rpm_files"

# --- purge leaves the machine clean ---
check "dpkg --purge" dpkg --purge crust
check "binary removed" test ! -e /usr/bin/crust
check "/etc/crust removed" test ! -e /etc/crust
if [ "$cni_before" -eq 0 ]; then
    check "CNI network removed on purge" test ! -e /etc/cni/net.d/10-crust-bridge.conflist
fi

if [ "$failed" -ne 0 ]; then
    echo "--- daemon log" >&2
    cat "$work/daemon.log" >&2 || true
fi
echo "package-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
