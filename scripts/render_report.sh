#!/usr/bin/env bash
# Renders an indexcache report (report.html from indexcache-overlap --out-dir or the search
# report next to a layer plan) to a PNG with headless Chromium, so the picture can be looked at
# and committed (docs/report-example.png) without opening a browser.
#
#   scripts/render_report.sh REPORT.html OUT.png [WIDTH [HEIGHT]]
#
# WIDTH x HEIGHT is the browser window (default 1400 x 2000); the PNG shows that much of the
# top of the page. Needs the Debian package `chromium` (apt-get install chromium). The reports
# are self-contained and Chromium is kept off the network (no background services, no QUIC,
# no sync), with a fresh profile in a temporary folder that is removed afterwards.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 4 ]]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH [HEIGHT]]" >&2
  exit 2
fi
report=$1
out=$2
width=${3:-1400}
height=${4:-2000}

if [[ ! -f "$report" ]]; then
  echo "error: $report: no such file" >&2
  exit 2
fi
if [[ ! "$width" =~ ^[0-9]+$ || ! "$height" =~ ^[0-9]+$ ]]; then
  echo "error: WIDTH and HEIGHT must be numbers of pixels, got $width x $height" >&2
  exit 2
fi
browser=""
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null 2>&1; then
    browser=$(command -v "$candidate")
    break
  fi
done
if [[ -z "$browser" ]]; then
  echo "error: no headless Chromium found: apt-get install chromium" >&2
  exit 2
fi

report_url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
out_dir=$(cd "$(dirname "$out")" && pwd)
out_path="$out_dir/$(basename "$out")"
profile=$(mktemp -d "${TMPDIR:-/tmp}/indexcache-render-XXXXXX")
trap 'rm -rf "$profile"' EXIT
# Chromium writes the screenshot next to a temporary name first; keep its chatter out of the way
# unless it fails.
log="$profile/chromium.log"
if ! "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-default-apps --disable-extensions --hide-scrollbars --force-device-scale-factor=1 \
    --user-data-dir="$profile" --window-size="$width,$height" \
    --screenshot="$profile/shot.png" "$report_url" >"$log" 2>&1; then
  cat "$log" >&2
  echo "error: chromium failed to render $report" >&2
  exit 1
fi
if [[ ! -s "$profile/shot.png" ]]; then
  cat "$log" >&2
  echo "error: chromium wrote no screenshot for $report" >&2
  exit 1
fi
mv "$profile/shot.png" "$out_path"
echo "$out_path (${width}x${height})"
