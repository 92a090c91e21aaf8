#!/usr/bin/env bash
# Install a CPU Vulkan driver that ManiSkill3 (sapien 3) accepts: Mesa 25 lavapipe from Debian
# bookworm-backports, unpacked into a cache folder without touching the system APT state.
#
# Debian bookworm's own Mesa 22.3 lavapipe is rejected by sapien 3 ("Failed to find a supported
# physical device"), so the .deb is fetched through an isolated APT_CONFIG that lists only
# bookworm-backports, and extracted with dpkg-deb -x. The system Vulkan loader (libvulkan1) is
# installed with apt-get when missing (needs root).
#
# Idempotent: a second run only checks the files and prints the ICD path.
# Usage:   export VK_ICD_FILENAMES="$(.ci/setup-vulkan.sh | tail -n 1)"
# Env:     MBDPO_LAVAPIPE_DIR  cache folder (default: ~/.cache/mbdpo/lavapipe)
#          MBDPO_DEBIAN_MIRROR Debian mirror (default: the one the system's apt sources use)
# Output:  the absolute path of the ICD json, as the last line of stdout.
set -euo pipefail

DIR="${MBDPO_LAVAPIPE_DIR:-$HOME/.cache/mbdpo/lavapipe}"
system_mirror() {  # the first main-archive URI of the system's apt sources
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources || true
      grep -hs '^deb ' /etc/apt/sources.list || true; } | awk '{print $2}' |
        grep -v -- '-security' | head -n 1 || true
}
MIRROR="${MBDPO_DEBIAN_MIRROR:-$(system_mirror)}"
ICD="$DIR/lvp_icd.json"
LIB="$DIR/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"

log() { echo "[setup-vulkan] $*" >&2; }

ensure_loader() {
    if ldconfig -p | grep -q 'libvulkan\.so\.1'; then
        return
    fi
    log "installing the system Vulkan loader (libvulkan1)"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libvulkan1 >&2
}

fetch_lavapipe() {
    mkdir -p "$DIR"/{lists/partial,cache/archives/partial,parts,root,debs}
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
        "$MIRROR" /usr/share/keyrings/debian-archive-keyring.gpg >"$DIR/parts/bpo.sources"
    printf 'Dir::Etc::SourceList "/dev/null";\nDir::Etc::SourceParts "%s/parts";\n' "$DIR" \
        >"$DIR/apt.conf"
    printf 'Dir::State::Lists "%s/lists";\nDir::Cache "%s/cache";\n' "$DIR" "$DIR" >>"$DIR/apt.conf"
    if [ "$(id -u)" = 0 ]; then  # the _apt sandbox user cannot write into root's cache folder
        printf 'APT::Sandbox::User "root";\n' >>"$DIR/apt.conf"
    fi
    log "fetching mesa-vulkan-drivers from bookworm-backports ($MIRROR)"
    APT_CONFIG="$DIR/apt.conf" apt-get update -qq >&2
    rm -f "$DIR"/debs/mesa-vulkan-drivers_*.deb
    (cd "$DIR/debs" && APT_CONFIG="$DIR/apt.conf" apt-get download -qq mesa-vulkan-drivers >&2)
    local deb
    deb="$(ls "$DIR"/debs/mesa-vulkan-drivers_*.deb | head -n 1)"
    log "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$DIR/root"
}

write_icd() {
    local api
    api="$(grep -o '"api_version": *"[^"]*"' \
        "$DIR"/root/usr/share/vulkan/icd.d/lvp_icd*.json 2>/dev/null | head -n 1 |
        sed 's/.*"\([0-9.]*\)"$/\1/')"
    api="${api:-1.4.305}"
    printf '{"file_format_version": "1.0.0", "ICD": {"api_version": "%s", "library_path": "%s"}}\n' \
        "$api" "$LIB" >"$ICD"
}

ensure_loader
if [ ! -f "$LIB" ]; then
    fetch_lavapipe
fi
if [ ! -f "$LIB" ]; then
    log "error: $LIB missing after unpacking mesa-vulkan-drivers"
    exit 1
fi
write_icd
log "lavapipe ready; export VK_ICD_FILENAMES=$ICD"
echo "$ICD"
