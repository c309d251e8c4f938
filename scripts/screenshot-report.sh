#!/usr/bin/env bash
# Renders a report.html in headless Chromium and saves a full-page screenshot.
#   scripts/screenshot-report.sh DIR OUT.png [WIDTH]
# DIR is a bench or run results folder holding report.html (or the path of an HTML file).
# Needs Debian's `chromium` (apt-get install chromium). Nothing is fetched from the network:
# the report is self-contained, and Chromium runs with its background networking off.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 DIR|FILE.html OUT.png [WIDTH]" >&2
    exit 64
fi
src=$1
out=$2
width=${3:-1280}
html=$src
[[ -d $src ]] && html=$src/report.html
if [[ ! -f $html ]]; then
    echo "error: $html does not exist; render it with: orchestrator report DIR" >&2
    exit 66
fi
browser=${CHROMIUM:-}
if [[ -z $browser ]]; then
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null; then browser=$b; break; fi
    done
fi
if [[ -z $browser ]]; then
    echo "error: no chromium found; install it with: apt-get install chromium" >&2
    exit 69
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
    --disable-component-update --no-first-run --disable-default-apps --disable-sync
    --hide-scrollbars --user-data-dir="$profile")

# Full page: measure the page's height at this width with a copy that reports it.
probe=$profile/probe.html
sed 's#</body>#<script>document.title="height:"+document.documentElement.scrollHeight</script></body>#' "$html" >"$probe"
height=$("$browser" "${flags[@]}" --window-size="$width,1000" --dump-dom "file://$probe" 2>/dev/null |
    sed -n 's#.*<title>height:\([0-9]*\)</title>.*#\1#p' | head -n1)
height=${height:-4000}
[[ $height -gt 30000 ]] && height=30000
url="file://$(realpath "$html")"
"$browser" "${flags[@]}" --window-size="$width,$height" --screenshot="$(realpath -m "$out")" "$url" >/dev/null 2>&1
if [[ ! -s $out ]]; then
    echo "error: chromium wrote no screenshot to $out" >&2
    exit 1
fi
echo "$out (${width}x${height})"
