# shellcheck shell=bash
# Debian root filesystem → base image, without any registry (none is reachable on the test machines).
#
# Sourced by the openclaw and hermes recipes' build.sh; each lists this file in its `inputs`, so the generic
# builder (tests/images/build.sh) rebuilds both images when it changes.
#
# ensure_base_image TAG_REPO SUITE DEBOOTSTRAP_SCRIPT INCLUDE_PACKAGES
#   Prints the tag of an imported `debootstrap --variant=minbase` image. The tag is keyed by the arguments and by
#   the text of make_base_rootfs (what defines the content), so changing either produces a new base; an existing
#   one is reused (the docker engine is the cache). Downloaded .debs are kept in $RUNNER_IMAGE_CACHE/debs/SUITE
#   to make a rebuild cheaper.

: "${RUNNER_IMAGE_CACHE:=/var/cache/runner-images}"
readonly DEBIAN_MIRROR=http://deb.debian.org/debian

ensure_base_image() {
    local repo=$1 suite=$2 script=$3 include=$4
    local key tag
    key=$(
        {
            printf '%s\n' "$suite" "$script" "$include" "$DEBIAN_MIRROR"
            declare -f make_base_rootfs
        } | sha256sum | cut -c1-12
    )
    tag="$repo:$key"
    if "${DOCKER:-docker}" image inspect "$tag" >/dev/null 2>&1; then
        printf '%s\n' "$tag"
        return 0
    fi

    # A fresh machine has no debootstrap: install Debian's (the builder runs as root).
    if ! command -v debootstrap >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "debian-base: installing debootstrap with apt" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2 ||
            { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends debootstrap >&2; } || true
    fi
    command -v debootstrap >/dev/null || {
        echo "debian-base: debootstrap is required to build $tag (apt-get install debootstrap)" >&2
        return 1
    }
    [[ -e $script ]] || {
        echo "debian-base: debootstrap script $script not found (debootstrap too old?)" >&2
        return 1
    }
    # A subshell so the EXIT trap always removes the rootfs (device nodes, root-owned files), even on failure.
    (
        work=$(mktemp -d "$RUNNER_IMAGE_CACHE/rootfs.XXXXXX")
        trap 'rm -rf -- "$work"' EXIT
        make_base_rootfs "$suite" "$script" "$include" "$work/rootfs" >&2
        echo "debian-base: importing $tag" >&2
        tar -C "$work/rootfs" --numeric-owner -cf - . |
            "${DOCKER:-docker}" import --message "debootstrap $suite minbase +$include" - "$tag" >/dev/null
    )
    printf '%s\n' "$tag"
}

make_base_rootfs() {
    local suite=$1 script=$2 include=$3 rootfs=$4
    local debs="$RUNNER_IMAGE_CACHE/debs/$suite"
    mkdir -p "$debs"
    echo "debian-base: debootstrap --variant=minbase $suite (+$include)" >&2
    # debootstrap does not check Release Valid-Until, so a forky snapshot older than the machine clock is fine here.
    # (apt inside the rootfs would need Acquire::Check-Valid-Until=false; no recipe runs apt after this step.)
    # Two stages so that dpkg can be told not to fsync every file it unpacks (pure overhead for a rootfs that
    # is packed right after): with force-unsafe-io the second stage takes ~60 % of the time.
    if ! debootstrap --foreign --variant=minbase --include="$include" --cache-dir="$debs" \
        "$suite" "$rootfs" "$DEBIAN_MIRROR" "$script" >"$rootfs.log" 2>&1 ||
        ! echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/zz-build-unsafe-io" ||
        ! chroot "$rootfs" /debootstrap/debootstrap --second-stage >>"$rootfs.log" 2>&1; then
        tail -n 30 "$rootfs.log" >&2
        echo "debian-base: debootstrap of $suite failed (last 30 log lines above)" >&2
        return 1
    fi
    rm -f "$rootfs/etc/dpkg/dpkg.cfg.d/zz-build-unsafe-io"
    # Trim what a sandbox never needs (~160 MB): apt lists and archives, docs, man pages, non-C locales, logs.
    rm -rf "${rootfs:?}"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/var/cache/debconf/*-old \
        "${rootfs:?}"/dev/* "${rootfs:?}"/proc/* "${rootfs:?}"/sys/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
    # Docker provides /etc/hosts, /etc/hostname and /etc/resolv.conf at run time; do not bake the host's.
    rm -f "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf"
    : >"$rootfs/etc/resolv.conf"
}
