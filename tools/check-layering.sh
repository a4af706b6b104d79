#!/bin/sh
# The dependency arrows of STYLE.md: each folder may include only what it points to.
#   logfmt -> (nothing of ours); vmm -> vmm only; record, replay -> vmm, logfmt;
#   debugger -> vmm, replay; ft -> record, replay, logfmt; guests -> guests, vmm/guest_abi.h
status=0
check() { # folder, allowed-regexp
	dir=$1
	allowed=$2
	[ -d "$dir" ] || return 0
	bad=$(grep -rnE '#include *"[^"]*/' "$dir" --include='*.c' --include='*.h' --include='*.S' |
		grep -vE "#include *\"($allowed)/" || true)
	if [ -n "$bad" ]; then
		echo "layering: $dir/ includes outside what STYLE.md allows:"
		echo "$bad"
		status=1
	fi
}
check logfmt 'logfmt'
check vmm 'vmm'
check record 'vmm|logfmt|record'
check replay 'vmm|logfmt|replay'
check debugger 'vmm|replay|debugger'
check ft 'record|replay|logfmt|ft'
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
[ $status -eq 0 ] && echo "layering: ok"
exit $status
