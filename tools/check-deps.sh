#!/bin/sh
# Check the Debian packages rewind needs; with --install and root, install the missing
# ones; otherwise print the one apt-get line to run. Unicorn 2.1.1 is fetched apart,
# without root, by tools/fetch-unicorn.sh (docs/architecture.md, 'vCPU backends').
set -u
pkgs="build-essential liblz4-dev libzstd-dev libxxhash-dev libunwind-dev libcriterion-dev gdb \
libsodium-dev libcurl4-openssl-dev debian-archive-keyring ca-certificates xz-utils"
missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
	case "$st" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
if [ "${1:-}" = "--install" ] && [ "$(id -u)" = 0 ]; then
	echo "check-deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null || {
		echo "check-deps: apt-get install failed for:$missing" >&2
		exit 1
	}
	exit 0
fi
echo "check-deps: missing Debian packages:$missing" >&2
echo "check-deps: run:  sudo apt-get install$missing" >&2
exit 1
