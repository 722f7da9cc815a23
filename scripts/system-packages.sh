#!/usr/bin/env bash
# The Debian packages the test suite needs beside the Python ones: a PostgreSQL server (the tests start
# a throwaway cluster of their own) and Chromium (the browser test of `rltui serve`). Installed only
# when missing, so a second `make test` costs nothing. Each line: a file that proves the package is
# there, then the package.
set -euo pipefail
needed=()
while read -r probe package; do
    [[ -z "$probe" || "$probe" == \#* ]] && continue
    compgen -G "$probe" >/dev/null || needed+=("$package")
done <<'LIST'
/usr/lib/postgresql/*/bin/initdb   postgresql
/usr/bin/chromium                  chromium
LIST
((${#needed[@]} == 0)) && exit 0
if ! command -v apt-get >/dev/null; then
    echo "rltui: the tests need these Debian packages: ${needed[*]} (no apt-get here; install them by hand)" >&2
    exit 1
fi
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "installing ${needed[*]} (Debian packages the tests need)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
