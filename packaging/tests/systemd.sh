#!/bin/bash
# Packaging tests: unit files verified and scored, the .deb built and listed, and the package
# installed and exercised under a real systemd booted with systemd-nspawn on an overlay of /.
# Needs root (CI runs as root). Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# Where cargo builds: $CARGO_TARGET_DIR when set, else ./target.
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
say() { printf '%s\n' "$*"; }

# 1. Tools.
if ! command -v cargo-deb >/dev/null 2>&1; then
    cargo install cargo-deb --version 3.8.0 --locked
fi
if ! command -v systemd-nspawn >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "systemd-container=$(dpkg-query -W -f='${Version}' systemd)"
fi

# 2. The .deb, and exactly the expected files in it.
# `cargo deb` prints the path of the package it built as its last line.
deb=$(cargo deb -p jobstore-bin --locked | tail -n1)
if [ ! -f "$deb" ]; then say "cargo deb did not name a package it built: '$deb'"; exit 1; fi
listing=$(dirname "$deb")/files.txt
dpkg-deb -c "$deb" | awk '{print $6}' | LC_ALL=C sort >"$listing"
diff -u packaging/tests/deb-files.txt "$listing"
say "ok: $deb holds exactly the expected files"

# 3. Unit files: systemd-analyze verify prints nothing (ExecStart pointed at the built binary
#    and at the pinned Litestream, neither installed on this machine), and the exposure score
#    of the daemon and of Litestream is at most 1.5.
litestream=$(tests/drill/install-litestream)
all_units="jobstore.service jobstore.socket jobstore-worker@.service jobstore-litestream.service"
units=$(mktemp -d)
for unit in $all_units; do
    sed -e "s#/usr/bin/jobstore#$target/release/jobstore#g" \
        -e "s#/usr/bin/litestream#$litestream#g" "packaging/$unit" >"$units/$unit"
done
for unit in $all_units; do
    out=$(cd "$units" && systemd-analyze verify --man=no "./$unit" 2>&1 || true)
    if [ -n "$out" ]; then
        say "systemd-analyze verify $unit:"; say "$out"; exit 1
    fi
done
say "ok: systemd-analyze verify prints nothing for every unit"
for unit in jobstore.service jobstore-litestream.service; do
    systemd-analyze security --offline=true --threshold=15 "$units/$unit" | tail -n1
done
say "ok: jobstore.service and jobstore-litestream.service exposure within 1.5"

# 4. Under a real systemd.
work=$(mktemp -d /tmp/jobstore-nspawn.XXXXXX)
cleanup() {
    umount "$work/root/merged" 2>/dev/null || true
    umount "$work/root" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/root" "$work/probe"
mount -t tmpfs -o size=3g tmpfs "$work/root"
mkdir -p "$work/root/upper" "$work/root/work" "$work/root/merged"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/root/upper,workdir=$work/root/work" "$work/root/merged"
merged=$work/root/merged
cp "$deb" "$work/probe/jobstore.deb"
# Litestream is not packaged with jobstore; the probe installs the pinned binary by hand.
cp "$litestream" "$work/probe/litestream"
install -m 755 packaging/tests/nspawn-probe.sh "$merged/usr/local/sbin/jobstore-probe"
cat >"$merged/etc/systemd/system/jobstore-probe.service" <<'UNIT'
[Unit]
Description=jobstore packaging probe
After=basic.target network.target dbus.service systemd-journald.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/jobstore-probe
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$merged/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/jobstore-probe.service "$merged/etc/systemd/system/multi-user.target.wants/"
# A clean slate inside: a fresh machine id, and no policy that forbids starting services on
# package installation (some images ship one for building containers).
rm -f "$merged/etc/machine-id" "$merged/usr/sbin/policy-rc.d"
timeout 300 systemd-nspawn -q --register=no --keep-unit --private-network \
    -D "$merged" --bind="$work/probe:/probe" -b >"$work/console.log" 2>&1 || true
cp "$work/console.log" "$(dirname "$deb")/nspawn-console.log" 2>/dev/null || true
cat "$work/probe/log" 2>/dev/null || { say "the probe left no log; console:"; tail -n 40 "$work/console.log"; }
if [ "$(cat "$work/probe/result" 2>/dev/null)" != PASS ]; then
    say "FAIL: the packaged service did not pass under systemd"
    exit 1
fi
say "ok: the package passed under a real systemd"
