#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#
# tests/kernels/run.sh BUILD_DIR -- porttrace on a second kernel (make test-kernels)
#
# porttrace is CO-RE: it is built here against the 6.18 vmlinux.h and must load
# and work unchanged on older kernels. This script checks that on Debian's 6.1
# cloud kernel, booted under QEMU (TCG: KVM is not usable on these machines):
#
#   1. installs what is missing (qemu-system-x86 busybox-static cpio python3),
#      running apt-get update first only when it has to install;
#   2. fetches the newest linux-image-6.1.*-cloud-amd64 with `apt-get download`
#      into BUILD_DIR/kernels/cache (reused while it is still the newest; no
#      other download) and unpacks it with dpkg -x;
#   3. builds an initramfs: busybox-static, BUILD_DIR/porttrace, portload and
#      ptsyscall, the shared libraries ldd lists for them (loader included),
#      the host's /etc/services, and tests/kernels/guest-init.sh as /init;
#   4. boots it under `timeout $KERNELS_TIMEOUT` (default 480 s) and reads the
#      serial console. The guest runs the tests itself (see guest-init.sh)
#      and prints GUEST lines; this script turns them into the report:
#
#        kernel 6.1.x: loaded yes|no
#        hooks: <what porttrace -v attached>
#        socket-call hooks: <which set, and why>
#        PASS name | FAIL name: why          one line per test
#        N passed, N failed                  always the last line
#
#   5. checks, on the host, the lifecycle test's JSON log that the guest sent
#      back (saved as BUILD_DIR/kernels/lifecycle-<kernel>.jsonl): that is the
#      test host-log, in check_saved_log() below.
#
# The serial console is kept in BUILD_DIR/kernels/console-<kernel>.log; when
# porttrace does not load, its -v output (libbpf and verifier log) is saved as
# BUILD_DIR/kernels/porttrace-<kernel>.err and its error lines are shown.
# Exit status: 0 when every test passed, 1 otherwise (a test failed, the guest
# did not finish, or the set-up failed).
#
# Environment: KERNELS_TIMEOUT (seconds for one boot, default 480: the suite
# runs twice, and took 260 s on a loaded 2-core host),
# KERNELS_SMP (guest CPUs, default 2), KERNELS_HOST_TAX=1 (also measure the
# host tax of each hook set in the guest: a benchmark, which CI does not run).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIMEOUT=${KERNELS_TIMEOUT:-480}
SMP=${KERNELS_SMP:-2}
# Kernel series to test; each is the newest Debian package of that series.
SERIES=(6.1)
# What guest-init.sh runs, in order; a test that reports nothing has failed.
SUITE=(lifecycle autobind-port exhaustion bind0 bind-fail udp-autobind ipv6 range hookset)
GUEST_TESTS=("${SUITE[@]}" "${SUITE[@]/%/-syscalls}" same-events)
# The host tax is a measurement, not a test: only when asked
# (KERNELS_HOST_TAX=1), as the benchmarks are. In one CI run its tight
# syscall loops left the TCG guest in a soft lockup until the timeout.
APPEND="console=ttyS0 quiet panic=-1"
if [ "${KERNELS_HOST_TAX:-0}" = 1 ]; then
	GUEST_TESTS+=(host-tax)
	APPEND+=" pt_host_tax=1"
fi
PKGS=(qemu-system-x86 busybox-static cpio python3)

PASSED=0
FAILED=0
REPORTED=
pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }

# The closing line is printed exactly once, also when the set-up fails.
finish() {
	local rc=$?

	[ -n "$REPORTED" ] && return
	[ $rc -ne 0 ] && [ "$FAILED" -eq 0 ] && fail setup "exit status $rc (see above)"
	echo "$PASSED passed, $FAILED failed"
}
trap finish EXIT

die() {
	echo "kernels: $*" >&2
	exit 1
}

[ $# -ge 1 ] || die "usage: tests/kernels/run.sh BUILD_DIR"
for b in porttrace portload ptsyscall; do
	[ -x "$1/$b" ] || die "$1/$b is missing: run make first"
done
BUILD=$(cd "$1" && pwd)
WORK=$BUILD/kernels
CACHE=$WORK/cache
mkdir -p "$CACHE"

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

# ---- set-up on the host ----

ensure_packages() {
	local p missing=()

	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "kernels: installing ${missing[*]}"
	if ! { apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}"; } >"$WORK/apt.log" 2>&1; then
		cat "$WORK/apt.log" >&2
		die "installing ${missing[*]} failed"
	fi
}

# newest_package SERIES: the linux-image-SERIES.*-cloud-amd64 package with the
# highest ABI number (Debian bumps it with every new upstream version).
newest_package() {
	local re="^linux-image-${1//./\\.}\\.[0-9]+-[0-9]+-cloud-amd64\$"

	apt-cache search --names-only "$re" | awk '{ print $1 }' | sort -V | tail -n 1
}

# fetch_kernel SERIES: sets DEB (the cached package) and KVER (its upstream
# version, e.g. 6.1.192). Downloads only when the cache lacks the newest.
fetch_kernel() {
	local series=$1 pkg ver file

	pkg=$(newest_package "$series")
	if [ -z "$pkg" ]; then
		# A fresh machine's package lists are empty.
		apt-get update -qq || true
		pkg=$(newest_package "$series")
	fi
	if [ -n "$pkg" ]; then
		ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
		file=$CACHE/${pkg}_${ver//:/%3a}_amd64.deb
		if [ -s "$file" ]; then
			FETCHED="cached"
		else
			rm -f "$CACHE"/linux-image-"$series".*-cloud-amd64_*.deb
			(cd "$CACHE" && apt-get download -qq -o APT::Sandbox::User=root "$pkg") ||
				die "apt-get download $pkg failed"
			[ -s "$file" ] || die "apt-get download $pkg did not leave $file"
			FETCHED="downloaded"
		fi
	else
		# No package list (offline): fall back to what the cache holds.
		file=$(ls "$CACHE"/linux-image-"$series".*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -n 1)
		[ -n "$file" ] || die "no linux-image-$series.*-cloud-amd64 package found"
		FETCHED="cached, package lists unavailable"
	fi
	DEB=$file
	PKG=$(dpkg-deb -f "$DEB" Package)
	KVER=$(dpkg-deb -f "$DEB" Version)
	KVER=${KVER%%-*}
}

# unpack_kernel: sets VMLINUZ, from DEB; keeps only boot/ of the package.
unpack_kernel() {
	local dir=$WORK/$PKG-$KVER

	VMLINUZ=$(ls "$dir"/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
	if [ -z "$VMLINUZ" ]; then
		rm -rf "$dir" "$dir.tmp"
		dpkg -x "$DEB" "$dir.tmp"
		mkdir -p "$dir"
		mv "$dir.tmp/boot" "$dir/boot"
		rm -rf "$dir.tmp"
		VMLINUZ=$(ls "$dir"/boot/vmlinuz-* | head -n 1)
	fi
}

# build_initramfs OUT: busybox, porttrace, portload, their libraries, /init.
build_initramfs() {
	local out=$1 root=$WORK/initramfs.root lib applet

	rm -rf "$root"
	mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,run}
	cp /bin/busybox "$root/bin/busybox"
	for applet in $("$root/bin/busybox" --list); do
		[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
	done
	cp "$BUILD/porttrace" "$BUILD/portload" "$BUILD/ptsyscall" "$root/bin/"
	# Libraries as ldd resolves them, and the loader (the line without =>).
	for lib in $(ldd "$BUILD/porttrace" "$BUILD/portload" "$BUILD/ptsyscall" |
		awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(0x/ { print $1 }' |
		sort -u); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
	cp /etc/services "$root/etc/services"
	cp "$HERE/guest-init.sh" "$root/init"
	chmod 0755 "$root/init"
	# The kernel opens /dev/console for /init before devtmpfs is mounted.
	mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || true
	(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out"
}

# ---- the host-side check of the guest's log ----

# check_saved_log FILE: test host-log. The guest's log goes through
# `porttrace timeline` on the host, as a user would read it after an
# incident: no warning, and the client's connect() autobind is in it.
# Prints the reason and returns non-zero on failure.
check_saved_log() {
	local out err
	err=$(mktemp)
	if ! out=$("$BUILD/porttrace" timeline --format json "$1" 2>"$err"); then
		echo "porttrace timeline failed: $(head -n 1 "$err")"
		rm -f "$err"
		return 1
	fi
	if [ -s "$err" ]; then
		echo "porttrace timeline warned: $(head -n 1 "$err")"
		rm -f "$err"
		return 1
	fi
	rm -f "$err"
	if ! grep -q '"how":"connect-autobind"' <<<"$out"; then
		echo "the timeline has no connect() autobind"
		return 1
	fi
}

# ---- one kernel ----

# section CONSOLE BEGIN END: the base64 block between two marker lines, decoded.
section() {
	sed -n "/^$2\$/,/^$3\$/p" "$1" | sed '1d;$d' | base64 -d | gunzip
}

test_kernel() {
	local series=$1 t0 t_dl t_unpack t_initrd t_qemu initrd console saved errlog
	local rc line t why loaded hooks hookset boot finished

	t0=$(now)
	fetch_kernel "$series"
	t_dl=$(since "$t0")
	t0=$(now)
	unpack_kernel
	t_unpack=$(since "$t0")
	t0=$(now)
	initrd=$WORK/initramfs-$KVER.cpio.gz
	build_initramfs "$initrd"
	t_initrd=$(since "$t0")
	console=$WORK/console-$KVER.log
	saved=$WORK/lifecycle-$KVER.jsonl
	errlog=$WORK/porttrace-$KVER.err
	rm -f "$saved" "$errlog"
	echo "kernels: $PKG $KVER ($FETCHED), booting under TCG, timeout ${TIMEOUT}s"

	# The guest's lines are shown as they come: the suite takes a while.
	t0=$(now)
	set +e
	timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -smp "$SMP" -m 1024 \
		-nodefaults -display none -serial stdio -no-reboot \
		-kernel "$VMLINUZ" -initrd "$initrd" \
		-append "$APPEND" </dev/null 2>"$WORK/qemu-$KVER.err" |
		tr -d '\r' | tee "$console" | while IFS= read -r line; do
			case $line in
			"GUEST LOADED "* | "GUEST PASS "* | "GUEST FAIL "*) echo "  guest: ${line#GUEST }" ;;
			esac
		done
	rc=${PIPESTATUS[0]}
	set -e
	t_qemu=$(since "$t0")

	# The report, from the saved console.
	loaded=$(sed -n 's/^GUEST LOADED //p' "$console" | head -n 1)
	hooks=$(sed -n 's/^GUEST HOOKS //p' "$console" | head -n 1)
	hookset=$(sed -n 's/^GUEST HOOKSET //p' "$console" | head -n 1)
	echo "kernel $KVER: loaded ${loaded:-no}"
	echo "hooks: ${hooks:-none}"
	echo "socket-call hooks: ${hookset:-?}"
	if [ "$loaded" != yes ] && grep -q '^---ERR-END---$' "$console"; then
		section "$console" ---ERR-BEGIN--- ---ERR-END--- >"$errlog" || true
		echo "porttrace -v on $KVER (all of it in $errlog):"
		{ grep -E '^(libbpf|porttrace):' "$errlog" | head -n 15; tail -n 15 "$errlog"; } |
			awk '!seen[$0]++' | sed 's/^/  | /'
	fi
	for t in "${GUEST_TESTS[@]}"; do
		if grep -qx "GUEST PASS $t" "$console"; then
			pass "$t"
		elif why=$(grep -m 1 "^GUEST FAIL $t: " "$console"); then
			fail "$t" "${why#"GUEST FAIL $t: "}"
		else
			fail "$t" "no result from the guest"
			continue
		fi
		# How long it took (guest clock) and what it saw.
		awk -v t="$t" '$1 == "GUEST" && $2 == "TIME" && $3 == t { d = sprintf("%.1fs", $5 - $4) }
			index($0, "GUEST INFO " t ": ") == 1 { i = substr($0, length("GUEST INFO " t ": ") + 1) }
			END { if (d != "" || i != "") print "  " (d != "" ? d : "?") (i != "" ? "; " i : "") }' "$console"
	done

	if ! grep -q '^---LOG-END---$' "$console"; then
		fail host-log "the guest sent back no log"
	elif ! section "$console" ---LOG-BEGIN--- ---LOG-END--- >"$saved" 2>/dev/null; then
		fail host-log "the log the guest sent back does not decode"
	elif why=$(check_saved_log "$saved" 2>&1); then
		pass host-log
	else
		fail host-log "$saved: $why"
	fi

	finished=$(sed -n 's/^GUEST DONE //p' "$console" | head -n 1)
	if [ -z "$finished" ]; then
		case $rc in
		124) why="timed out after ${TIMEOUT}s" ;;
		*) why="qemu exited with status $rc: $(tail -n 1 "$WORK/qemu-$KVER.err" 2>/dev/null)" ;;
		esac
		fail guest "did not finish ($why); console: $console, last lines:"
		grep -v '^$' "$console" | tail -n 8 | sed 's/^/  | /'
	fi
	boot=$(awk '/^GUEST TIME / { print $4; exit }' "$console")
	echo "timing: fetch $t_dl, unpack $t_unpack, initramfs $t_initrd," \
		"qemu $t_qemu (guest: boot ${boot:-?}s, done at ${finished:-?}s of uptime)"
}

ensure_packages
for s in "${SERIES[@]}"; do
	test_kernel "$s"
done
REPORTED=1
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
