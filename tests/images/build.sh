#!/usr/bin/env bash
# tests/images/build.sh NAME — the one cached builder for test images.
#
# Hashes the recipe (tests/images/NAME/ plus the paths listed in its optional `inputs`
# file), and if runner-test/NAME:<first 12 hex> exists prints that tag and exits; else runs
# tests/images/NAME/build.sh <tag>, tags runner-test/NAME:latest too, and prints the tag.
# The tag is always the last stdout line; everything else goes to stderr.
# Concurrent callers serialize on a flock per NAME, so an image is never built twice.
set -euo pipefail

die() { echo "images: $*" >&2; exit 1; }

name=${1:-}
[ $# -eq 1 ] && [[ $name =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "usage: tests/images/build.sh NAME"

images_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$images_dir/../.." && pwd)
recipe_dir=$images_dir/$name
[ -x "$recipe_dir/build.sh" ] || die "no executable recipe $recipe_dir/build.sh"

# Debian's 20.10 CLI first: it has BuildKit built in, a newer CLI elsewhere in PATH may not.
if [ -z "${DOCKER:-}" ]; then
    if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER RUNNER_REPO_ROOT=$repo

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2fs", b - a }'; }
t0=$(now)

# Hash input: every file's mode, path and content, in byte order of the path, so renames,
# chmods and edits all change the tag. Build outputs and VCS data are pruned.
roots=("tests/images/$name")
if [ -f "$recipe_dir/inputs" ]; then
    while read -r line; do
        line=${line%%#*}
        line=${line//[[:space:]]/}
        [ -z "$line" ] && continue
        [ -e "$repo/$line" ] || die "$name: input $line (from $recipe_dir/inputs) does not exist"
        roots+=("$line")
    done <"$recipe_dir/inputs"
fi
list_files() {
    find "${roots[@]}" \( -name target -o -name .git -o -name node_modules \) -prune \
        -o -type f -printf '%m %p\0' | LC_ALL=C sort -zu -k2
}
hash=$(
    cd "$repo"
    {
        list_files | tr '\0' '\n'
        list_files | cut -z -d' ' -f2- | xargs -0 -r sha256sum --
    } | sha256sum | cut -c1-12
)
tag="runner-test/$name:$hash"
latest="runner-test/$name:latest"

exists() { "$DOCKER" image inspect --format '{{.Id}}' "$@" 2>/dev/null; }

cached() {
    echo "images: $name: cached $tag ($(since "$t0"))" >&2
    echo "$tag"
    exit 0
}

# Fast path, one engine call: both tags exist and are the same image.
if ids=$(exists "$tag" "$latest") && [ "$ids" = "${ids%%$'\n'*}"$'\n'"${ids%%$'\n'*}" ]; then
    cached
fi
# The tag exists but :latest is missing or points elsewhere (another checkout built it).
if exists "$tag" >/dev/null; then
    "$DOCKER" tag "$tag" "$latest"
    cached
fi

"$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "no Docker engine reachable via $DOCKER; run \`tests/engine.sh ensure\`"

lock=/tmp/runner-images-$name.lock
exec 9>>"$lock"
wait_limit=${RUNNER_IMAGE_LOCK_WAIT_SECS:-1800}
if ! flock -n 9; then
    echo "images: $name: another process is building it; waiting (max ${wait_limit}s)" >&2
    flock -w "$wait_limit" 9 || die "$name: gave up after ${wait_limit}s waiting for $lock"
fi

# The holder we waited for may have built exactly this tag.
if exists "$tag" >/dev/null; then
    "$DOCKER" tag "$tag" "$latest"
    echo "images: $name: built by another process: $tag ($(since "$t0"))" >&2
    echo "$tag"
    exit 0
fi

echo "images: $name: building $tag" >&2
t1=$(now)
# The recipe's stdout is diagnostics too: only this script's last line is the tag.
"$recipe_dir/build.sh" "$tag" >&2 || die "$name: recipe $recipe_dir/build.sh failed"
exists "$tag" >/dev/null || die "$name: recipe finished but did not produce $tag"
"$DOCKER" tag "$tag" "$latest"
size=$("$DOCKER" image inspect --format '{{.Size}}' "$tag")
echo "images: $name: built $tag in $(since "$t1") (total $(since "$t0"), $((size / 1024)) KiB)" >&2
echo "$tag"
