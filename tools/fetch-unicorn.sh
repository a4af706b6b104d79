#!/bin/sh
# Fetch Unicorn 2.1.1 (Debian trixie's libunicorn2t64 + libunicorn-dev) into build/deps/
# without root, through a private apt configuration (docs/architecture.md: Debian 12's 2.0.1
# ignores guest page tables and is 10x slower on stores).
set -eu
dest=${1:-build/deps}
want=2.1.1
if [ -f "$dest/usr/include/unicorn/unicorn.h" ] && [ -f "$dest/.unicorn-$want" ]; then
	exit 0
fi
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
state="$dest/apt"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/debs"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ ! -f "$keyring" ]; then
	echo "fetch-unicorn: $keyring is missing; install debian-archive-keyring" >&2
	exit 1
fi
cat >"$state/sources.list" <<SRC
deb [signed-by=$keyring] http://deb.debian.org/debian trixie main
SRC
opts="-o Dir::Etc::sourcelist=$state/sources.list -o Dir::Etc::sourceparts=-
 -o Dir::State::Lists=$state/lists -o Dir::Cache=$state/cache
 -o Dir::State::status=/dev/null -o Debug::NoLocking=1 -o APT::Architecture=amd64
 -o APT::Get::List-Cleanup=0"
echo "fetch-unicorn: fetching Debian trixie's package list (private apt state in $state)"
# shellcheck disable=SC2086
apt-get $opts -q update >"$state/update.log" 2>&1 || {
	echo "fetch-unicorn: apt-get update against trixie failed; see $state/update.log" >&2
	exit 1
}
cd "$state/debs"
# shellcheck disable=SC2086
apt-get $opts -q download libunicorn2t64 libunicorn-dev >"$state/download.log" 2>&1 || {
	echo "fetch-unicorn: apt-get download failed; see $state/download.log" >&2
	exit 1
}
for d in ./libunicorn2t64_*.deb ./libunicorn-dev_*.deb; do
	dpkg-deb -x "$d" "$dest"
done
ver=$(ls libunicorn2t64_*.deb | sed 's/.*_\([0-9.]*\)-.*/\1/')
if [ "$ver" != "$want" ]; then
	echo "fetch-unicorn: trixie served Unicorn $ver, expected $want" >&2
	exit 1
fi
touch "$dest/.unicorn-$want"
echo "fetch-unicorn: Unicorn $ver unpacked into $dest"
