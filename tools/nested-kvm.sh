#!/bin/sh
# KVM where the host has none: boot Debian's kernel under QEMU's software CPU (TCG) with
# AMD's SVM, load kvm_amd there, and run a command inside with /dev/kvm
# (docs/kvm-backend.md, "KVM nested in QEMU TCG"). The inner system is this host's own
# file system (9p, read-write), so the command sees the repository and the build as they
# are here; its output and exit status come back.
#
#   tools/nested-kvm.sh [-c CPUS] [-m MIB] [-t SECONDS] COMMAND [ARG...]
#
#   -c CPUS     virtual CPUs (default 1: two have hung the inner kernel now and then)
#   -m MIB      memory (default 4096)
#   -t SECONDS  give up after this long (default 1800)
#
# The command runs in the current directory, as root, under /bin/sh. Everything the
# inner CPU runs is emulated, so it is slow: some 20x for ordinary code, kvm guests
# about as fast as their own instructions are emulated. Needs qemu-system-x86_64,
# busybox (static) and apt's lists (for the kernel package); caches in build/nested.
# Exit status: the command's, or 125 when the inner system did not report one.
set -eu
cpus=1 mem=4096 limit=1800
while getopts c:m:t: o; do
	case $o in
	c) cpus=$OPTARG ;;
	m) mem=$OPTARG ;;
	t) limit=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
	echo "usage: tools/nested-kvm.sh [-c CPUS] [-m MIB] [-t SECONDS] COMMAND [ARG...]" >&2
	exit 2
fi
for p in qemu-system-x86_64 busybox apt-get dpkg-deb; do
	command -v "$p" >/dev/null 2>&1 || {
		echo "nested-kvm: $p not found (apt-get install qemu-system-x86 busybox-static)" >&2
		exit 2
	}
done
dir=$(pwd)/build/nested
mkdir -p "$dir"

# The kernel and its modules: the package behind linux-image-amd64, fetched once.
if [ ! -f "$dir/bzImage" ] || [ ! -d "$dir/mods" ]; then
	pkg=$(LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
	[ -n "$pkg" ] || {
		echo "nested-kvm: apt-cache knows no kernel behind linux-image-amd64 (apt-get update)" >&2
		exit 1
	}
	echo "nested-kvm: fetching $pkg"
	rm -rf "$dir/pkg" "$dir/mods"
	mkdir -p "$dir/pkg/root" "$dir/mods"
	(cd "$dir/pkg" && apt-get -q download "$pkg" >download.log 2>&1) || {
		echo "nested-kvm: apt-get download $pkg failed; see $dir/pkg/download.log" >&2
		exit 1
	}
	dpkg-deb -x "$dir"/pkg/*.deb "$dir/pkg/root"
	cp "$dir"/pkg/root/boot/vmlinuz-* "$dir/bzImage"
	k=$(ls -d "$dir"/pkg/root/lib/modules/*/kernel)
	# In the order insmod needs them (each after what it depends on).
	for m in virt/lib/irqbypass arch/x86/kvm/kvm drivers/crypto/ccp/ccp \
		arch/x86/kvm/kvm-amd drivers/virtio/virtio_ring drivers/virtio/virtio \
		drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci_modern_dev \
		drivers/virtio/virtio_pci net/9p/9pnet net/9p/9pnet_virtio fs/netfs/netfs \
		fs/fscache/fscache fs/9p/9p; do
		f=$(ls "$k/$m".ko* 2>/dev/null | head -n 1)
		[ -n "$f" ] || {
			echo "nested-kvm: $pkg has no $m module" >&2
			exit 1
		}
		cp "$f" "$dir/mods/"
		basename "$f" >>"$dir/mods/order"
	done
	rm -rf "$dir/pkg"
fi

# The initramfs: busybox, the modules, and an init that mounts this host's / and runs
# $dir/cmd there.
ir=$dir/ir
rm -rf "$ir"
mkdir -p "$ir/bin" "$ir/m" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/mnt"
cp "$(command -v busybox)" "$ir/bin/busybox"
cp "$dir"/mods/*.ko* "$ir/m/"
cat >"$ir/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
for m in $(tr '\n' ' ' <"$dir/mods/order"); do insmod /m/\$m || echo "nested-kvm: insmod \$m failed"; done
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up # loopback: gdb, the ft pair
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 hostroot /mnt || poweroff -f
mount -t proc proc /mnt/proc; mount -t sysfs sys /mnt/sys; mount -t devtmpfs dev /mnt/dev
mount -t tmpfs tmp /mnt/tmp; mkdir -p /mnt/dev/pts /mnt/dev/shm
mount -t devpts pts /mnt/dev/pts; mount -t tmpfs shm /mnt/dev/shm
if [ -e /dev/kvm ]; then
	chroot /mnt /bin/sh -c 'cd "\$1" && sh ./build/nested/cmd >build/nested/out 2>&1; echo \$? >build/nested/status' sh "$(pwd)"
else
	echo "no /dev/kvm inside: kvm_amd did not load" >"$dir/out"
fi
sync
poweroff -f
EOF
chmod +x "$ir/init"
(cd "$ir" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$dir/initrd.gz")

# The command, as a script the inner shell runs.
{
	printf 'exec'
	for a in "$@"; do
		printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"
	done
	printf '\n'
} >"$dir/cmd"
rm -f "$dir/out" "$dir/status"
echo "nested-kvm: booting (TCG, -cpu max with svm, $cpus CPU, $mem MiB); running: $*"
timeout "$limit" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$cpus" \
	-m "$mem" -nographic -no-reboot -nodefaults -serial file:"$dir/console" \
	-kernel "$dir/bzImage" -initrd "$dir/initrd.gz" \
	-append "console=ttyS0 quiet panic=-1" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,multidevs=remap ||
	echo "nested-kvm: QEMU ended with status $? (after ${limit} s it is stopped)" >&2
[ -f "$dir/out" ] && cat "$dir/out"
if [ ! -f "$dir/status" ]; then
	echo "nested-kvm: the inner system reported no status; its console is in $dir/console" >&2
	exit 125
fi
exit "$(cat "$dir/status")"
