#!/bin/sh
# runtime-packages.sh BINARY: prints, one a line, the Debian packages that own the shared libraries
# BINARY loads (per ldd), so the runtime image installs exactly those and no hand-kept list.
# Debian 12 is not merged-/usr in dpkg's database: a library ldd finds under /usr/lib may be
# registered as /lib/... (and the other way round), so both spellings are tried.
set -eu
binary="$1"
libs="$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')"
if ldd "$binary" | grep -q 'not found'; then
  echo "runtime-packages: $binary has unresolved libraries:" >&2
  ldd "$binary" | grep 'not found' >&2
  exit 1
fi
owners=""
for lib in $libs; do
  real="$(readlink -f "$lib")"
  owner=""
  for candidate in "$lib" "$real" "${lib#/usr}" "/usr$lib" "${real#/usr}" "/usr$real"; do
    owner="$(dpkg-query -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1)" || owner=""
    [ -n "$owner" ] && break
  done
  if [ -z "$owner" ]; then
    echo "runtime-packages: no Debian package owns $lib" >&2
    exit 1
  fi
  owners="$owners $owner"
done
printf '%s\n' $owners | sort -u
