#!/bin/sh
# Build DIR/initrd.cpio.gz (default build/linux), the initramfs of docs/linux.md: Debian's
# busybox-static, fetched without root (`apt-get download`, `dpkg-deb -x`, as
# tools/fetch-linux.sh fetches the kernel), a link for each of its applets, and a small
# /init that mounts /proc, /sys and /dev (devtmpfs), prints the marker line
#   rewind-initramfs: ready
# and starts a shell on the console. The archive (cpio "newc", gzip) is written by this
# script itself: no cpio program and no root are needed, and the device node /dev/console
# goes into it as an entry. Every entry has owner 0:0 and time 0, so the same busybox gives
# the same bytes. Used by `make linux`; tests/integration/test_linux.c boots it.
set -eu
dir=${1:-build/linux}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
out="$dir/initrd.cpio.gz"
bb="$dir/busybox"

# busybox must be static (the initramfs has no libc) and x86-64.
check_bb() {
	LC_ALL=C readelf -h "$1" 2>/dev/null | grep -q 'Machine:.*X86-64' || return 1
	! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'
}

if ! { [ -f "$bb" ] && check_bb "$bb"; }; then
	echo "mkinitrd: downloading busybox-static"
	work="$dir/busybox-pkg"
	rm -rf "$work"
	mkdir -p "$work/root"
	if ! (cd "$work" && apt-get -q download busybox-static >"$work/download.log" 2>&1); then
		echo "mkinitrd: apt-get download busybox-static failed; see $work/download.log" >&2
		exit 1
	fi
	deb=$(ls "$work"/*.deb | head -n 1)
	dpkg-deb -x "$deb" "$work/root"
	if ! check_bb "$work/root/bin/busybox"; then
		echo "mkinitrd: $deb holds no static x86-64 /bin/busybox" >&2
		exit 1
	fi
	cp "$work/root/bin/busybox" "$bb.tmp"
	mv "$bb.tmp" "$bb"
	echo "busybox-static $(dpkg-deb -f "$deb" Version)" >"$dir/busybox.version"
	rm -rf "$work"
fi

# ---- the archive ------------------------------------------------------------------------
tmp="$out.tmp"
: >"$tmp"
ino=1

# pad N: zero bytes to the next multiple of 4 after N bytes
pad() {
	n=$(((4 - $1 % 4) % 4))
	[ "$n" -eq 0 ] || head -c "$n" /dev/zero >>"$tmp"
}

# entry NAME MODE SIZE [RDEV_MAJOR RDEV_MINOR]: a newc header and the name (data follows)
entry() {
	namesize=$((${#1} + 1))
	nlink=1
	case "$2" in 040*) nlink=2 ;; esac
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		"$ino" "$(($2))" 0 0 "$nlink" 0 "$3" 0 0 "${4:-0}" "${5:-0}" "$namesize" 0 >>"$tmp"
	printf '%s\000' "$1" >>"$tmp"
	pad $((110 + namesize))
	ino=$((ino + 1))
}

dir_entry() { entry "$1" 040755 0; }

# file NAME MODE PATH: a regular file with PATH's bytes
file_entry() {
	size=$(wc -c <"$3")
	entry "$1" "$2" "$size"
	cat "$3" >>"$tmp"
	pad "$size"
}

# link NAME TARGET: a symbolic link
link_entry() {
	entry "$1" 0120777 "${#2}"
	printf '%s' "$2" >>"$tmp"
	pad "${#2}"
}

init="$dir/init.tmp"
cat >"$init" <<'EOF'
#!/bin/sh
# /init of rewind's initramfs (tools/mkinitrd.sh, docs/linux.md)
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root PS1='# '
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "rewind-initramfs: ready"
# A session of its own, with the console as its controlling terminal (so Ctrl-C works).
exec setsid cttyhack sh
EOF

for d in bin sbin usr usr/bin usr/sbin dev proc sys root tmp etc; do
	dir_entry "$d"
done
entry dev/console 020600 0 5 1
file_entry bin/busybox 0100755 "$bb"
file_entry init 0100755 "$init"
# A link for every applet, where busybox would install it (bin/sh among them).
"$bb" --list-full | LC_ALL=C sort | while read -r path; do
	[ "$path" = bin/busybox ] && continue
	case "$path" in
	*/*/*) up=../../bin/busybox ;;
	*/*) up=../bin/busybox ;;
	*) up=bin/busybox ;;
	esac
	link_entry "$path" "$up"
	# (the loop runs in a subshell: ino counts on from the applets' number below)
done
ino=$((ino + $("$bb" --list-full | grep -cv '^bin/busybox$')))
entry TRAILER!!! 0 0
gzip -9 -n -c "$tmp" >"$out.gz.tmp"
mv "$out.gz.tmp" "$out"
rm -f "$tmp" "$init"
echo "mkinitrd: $out ($(wc -c <"$out") bytes: $(cat "$dir/busybox.version" 2>/dev/null ||
	echo busybox), $("$bb" --list-full | wc -l) applets)"
