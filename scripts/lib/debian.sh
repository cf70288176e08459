# Shared by scripts/test and scripts/lab: install Debian packages that are missing, once.
# Usage: ensure_debian_packages PKG...
ensure_debian_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    echo "installing missing Debian packages: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "need root to install ${missing[*]} (run as root, or install them)" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
