#!/bin/sh
# The dependency arrows of docs/architecture.md, 'Layering': each folder may include only
# what it points to.
#   logfmt -> (nothing of ours); vmm -> vmm only; record, replay -> vmm, logfmt;
#   debugger -> vmm, replay; ft -> record, replay, logfmt, vmm;
#   guests -> guests, vmm/guest_abi.h
# And docs/ is self-sufficient: no tracked file cites a design document kept outside the
# repository (a clone does not have it).
cd "$(dirname "$0")/.." || exit 2
status=0
check() { # folder, allowed-regexp
	dir=$1
	allowed=$2
	[ -d "$dir" ] || return 0
	bad=$(grep -rnE '#include *"[^"]*/' "$dir" --include='*.c' --include='*.h' --include='*.S' |
		grep -vE "#include *\"($allowed)/" || true)
	if [ -n "$bad" ]; then
		echo "layering: $dir/ includes outside what docs/architecture.md allows:"
		echo "$bad"
		status=1
	fi
}
check logfmt 'logfmt'
check vmm 'vmm'
check record 'vmm|logfmt|record'
check replay 'vmm|logfmt|replay'
check debugger 'vmm|replay|debugger'
check ft 'record|replay|logfmt|vmm|ft'
bad=$(grep -rnE '#include *<' guests --include='*.c' --include='*.h' --include='*.S' |
	grep -vE '<(stdint|stddef|stdbool|stdarg)\.h>' || true)
if [ -n "$bad" ]; then
	echo "layering: guests/ include host headers:"
	echo "$bad"
	status=1
fi
bad=$(grep -rnE '#include *"[^"]*vmm/' guests | grep -v 'vmm/guest_abi.h' || true)
if [ -n "$bad" ]; then
	echo "layering: guests/ may include only vmm/guest_abi.h from the host:"
	echo "$bad"
	status=1
fi
# Sockets only in tools/, debugger/, ft/.
bad=$(grep -rnE '\b(socket|accept4?|listen)\(' vmm logfmt record replay 2>/dev/null || true)
if [ -n "$bad" ]; then
	echo "layering: sockets opened outside tools/, debugger/, ft/:"
	echo "$bad"
	status=1
fi
# Citations of the project's former out-of-tree design notes (the design is
# docs/architecture.md now). The pattern is spelled so that it does not match itself.
cite='DESIG[N]\.md|STYL[E]\.md|\.\./share[d]'
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	bad=$(git ls-files -z | xargs -0r grep -nIsE "$cite" -- || true)
else
	bad=$(find . \( -name .git -o -name build -o -name .kvm \) -prune -o -type f -print0 |
		xargs -0r grep -nIsE "$cite" -- || true)
fi
if [ -n "$bad" ]; then
	echo "layering: these files cite design notes outside the repository; point them into"
	echo "docs/ instead (docs/architecture.md has the design):"
	echo "$bad"
	status=1
fi
[ $status -eq 0 ] && echo "layering: ok"
exit $status
