#!/bin/sh
# Regenerate vmlinux/<arch>/vmlinux.h from a running kernel's BTF, so that a
# build needs no BTF on the build host. CO-RE relocates at load time, so one
# header serves every kernel: regenerate only to use types a newer kernel added.
#
#   vmlinux/gen.sh [BTF_FILE]    (default /sys/kernel/btf/vmlinux)
set -eu
btf=${1:-/sys/kernel/btf/vmlinux}
arch=$(uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
out=$(dirname "$0")/$arch/vmlinux.h
[ -r "$btf" ] || { echo "gen.sh: cannot read $btf: the kernel needs CONFIG_DEBUG_INFO_BTF=y" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
bpftool btf dump file "$btf" format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out from $btf ($(uname -r))"
