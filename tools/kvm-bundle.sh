#!/bin/sh
# Pack what the KVM checks need for a machine that has /dev/kvm but none of our libraries
# (docs/kvm-backend.md, "Checking on a machine with /dev/kvm"):
#
#   tools/kvm-bundle.sh [BUILD_DIR]
#
# Copies every shared library that build/rewind and the kvm-relevant test binaries load,
# except the C library's own, into .kvm/lib, and writes .kvm/check.sh, which runs on the
# other machine from the repository root with BUILD_DIR, guests and tests carried along.
set -eu
B=${1:-build}
out=.kvm
bins="$B/rewind $B/tests/integration/test_conformance $B/tests/integration/test_record
$B/tests/integration/test_run"
for b in $bins; do
	if [ ! -x "$b" ]; then
		echo "kvm-bundle: $b is missing; run make test-build first" >&2
		exit 2
	fi
done
rm -rf "$out"
mkdir -p "$out/lib"
# shellcheck disable=SC2086  # the list is word-split on purpose
ldd $bins | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u | while read -r lib; do
	case $(basename "$lib") in
	libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux*) ;;
	*) cp -L "$lib" "$out/lib/" ;;
	esac
done
cat >"$out/check.sh" <<EOF
#!/bin/sh
# Written by tools/kvm-bundle.sh: the KVM checks, from the repository root. Results and
# logs go to \${OUT:-.kvm/out}.
export LD_LIBRARY_PATH="\$PWD/$out/lib" REWIND_BUILD="$B"
o=\${OUT:-$out/out}
mkdir -p "\$o"
uname -a
ls -l /dev/kvm
"$B/rewind" run --backend kvm "$B/guests/hello.elf"
echo "hello on kvm: exit status \$?"
for t in test_conformance test_run; do
	"$B/tests/integration/\$t" --jobs=1 --verbose >"\$o/\$t.txt" 2>&1
	echo "\$t: exit status \$?"; tail -n 3 "\$o/\$t.txt"
done
"$B/tests/integration/test_record" --jobs=1 --verbose --filter '*kvm*' >"\$o/test_record.txt" 2>&1
echo "test_record (kvm): exit status \$?"; tail -n 3 "\$o/test_record.txt"
for g in hello timer spew; do
	"$B/rewind" record --backend kvm -o "\$o/\$g.rwl" "$B/guests/\$g.elf" >/dev/null 2>"\$o/\$g.rec.txt"
	"$B/rewind" replay "\$o/\$g.rwl" >/dev/null 2>"\$o/\$g.rpl.txt"
	echo "\$g: \$(tail -n 1 "\$o/\$g.rec.txt") / \$(tail -n 1 "\$o/\$g.rpl.txt")"
done
EOF
chmod +x "$out/check.sh"
echo "kvm-bundle: $(ls "$out/lib" | wc -l) libraries, $(du -sh "$out" | cut -f1) in $out"
echo "kvm-bundle: on the KVM machine, carry $out $B/rewind $B/guests $B/tests/integration"
echo "kvm-bundle: and run: sh $out/check.sh"
