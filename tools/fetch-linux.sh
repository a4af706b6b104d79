#!/bin/sh
# Fetch Debian's stock Linux kernel and extract its ELF vmlinux (a PVH guest) into DIR
# (default build/linux), without root: `apt-get download` of the package that the
# linux-image-amd64 metapackage depends on, `dpkg-deb -x`, then the xz stream inside the
# bzImage /boot/vmlinuz-* is decompressed to DIR/vmlinux. (Its symbols: the package's
# /boot/System.map-* is a placeholder that points at the -dbg package, some 860 MB; rewind
# reads the kernel's own kallsyms tables from vmlinux instead, debugger/ksyms.h.) Used by
# `make linux` and by
# tests/integration/test_linux.c (which skips when DIR/vmlinux is missing). It says which
# kernel it fetched (package and version, also kept in DIR/version): Debian's archive
# keeps only its newest kernel, so that is whatever Debian serves today.
set -eu
dir=${1:-build/linux}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
out="$dir/vmlinux"

# The ELF must be a 64-bit x86-64 executable carrying the Xen PVH entry note
# (XEN_ELFNOTE_PHYS32_ENTRY, type 18; readelf prints it as an unknown note type 0x12).
check_pvh() {
	LC_ALL=C readelf -h "$1" 2>/dev/null | grep -q 'Class:.*ELF64' || return 1
	LC_ALL=C readelf -h "$1" 2>/dev/null | grep -q 'Machine:.*X86-64' || return 1
	LC_ALL=C readelf -n "$1" 2>/dev/null | grep -Eq '^ *Xen .*(\(0x00000012\)|PHYS32_ENTRY)'
}

pkg=$(LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)

# A kernel fetched before stays (the tests compare it with QEMU's boot of itself, so an
# older one is as good); say which it is, and whether apt's lists now name another.
if [ -f "$out" ] && check_pvh "$out"; then
	have=$(cat "$dir/version" 2>/dev/null || echo "a kernel of unknown version")
	echo "fetch-linux: $out already present: $have"
	serves=${pkg:+$pkg $(LC_ALL=C apt-cache show --no-all-versions "$pkg" 2>/dev/null |
		sed -n 's/^Version: //p' | head -n 1)}
	# (DIR/version of an older fetch-linux holds the package alone.)
	case "$serves" in
	"" | "$have" | "$have "*) ;;
	*) echo "fetch-linux: Debian now serves $serves: 'rm -r $dir' and 'make linux' fetch it" ;;
	esac
	exit 0
fi

if [ -z "$pkg" ]; then
	echo "fetch-linux: apt-cache knows no kernel package behind linux-image-amd64 (run 'apt-get update' on a Debian system)" >&2
	exit 1
fi
echo "fetch-linux: downloading $pkg"
work="$dir/pkg"
rm -rf "$work"
mkdir -p "$work/root"
if ! (cd "$work" && apt-get -q download "$pkg" >"$work/download.log" 2>&1); then
	echo "fetch-linux: apt-get download $pkg failed; see $work/download.log" >&2
	exit 1
fi
deb=$(ls "$work"/*.deb | head -n 1)
ver=$(dpkg-deb -f "$deb" Version)
echo "fetch-linux: unpacking $(basename "$deb") ($pkg, version $ver)"
dpkg-deb -x "$deb" "$work/root"
bz=$(ls "$work"/root/boot/vmlinuz-* 2>/dev/null | head -n 1)
if [ -z "$bz" ]; then
	echo "fetch-linux: $deb holds no /boot/vmlinuz-*" >&2
	exit 1
fi

# The bzImage is a setup header and a decompressor followed by the payload, an xz stream
# (magic FD 37 7A 58 5A 00) of the ELF vmlinux. Try each occurrence of the magic until one
# decompresses to an ELF; xz complains about what follows the stream, which is expected.
echo "fetch-linux: extracting the ELF from $(basename "$bz")"
offs=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | cut -d: -f1)
found=
for off in $offs; do
	tail -c +"$((off + 1))" "$bz" | xz -dc 2>/dev/null >"$out.tmp" || true
	if [ -s "$out.tmp" ] && check_pvh "$out.tmp"; then
		found=$off
		break
	fi
done
if [ -z "$found" ]; then
	rm -f "$out.tmp"
	echo "fetch-linux: no xz stream in $bz decompresses to an ELF64 x86-64 kernel with a PVH note" >&2
	exit 1
fi
mv "$out.tmp" "$out"
echo "$pkg $ver" >"$dir/version"
rm -rf "$work"
echo "fetch-linux: $out ($(wc -c <"$out") bytes, xz stream at offset $found) is a PVH ELF of $pkg"
echo "fetch-linux: fetched $pkg, version $ver"
