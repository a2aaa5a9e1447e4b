#!/usr/bin/env bash
# Install what datahub's local services need on Debian 12, idempotently.
#
# Host packages: Mosquitto, its clients, PostgreSQL 15 and debootstrap.
# TimescaleDB has no bookworm package, so it runs from a Debian 13 "trixie" root
# made with debootstrap (PostgreSQL 17 + postgresql-17-timescaledb), started by
# deploy/services.sh through chroot; its streaming replica runs from the same root.
#
# Usage: provision.sh [mosquitto|timescaledb|postgres|replica|pgbouncer|nodejs|chromium|systemd ...]
# (default: all; the trixie root is made only when timescaledb or replica is among them;
# nodejs (npm, to build the dashboard), chromium (its browser tests), pgbouncer (Debian's
# PgBouncer) and systemd (systemd-analyze, which checks deploy/systemd) named alone install
# only themselves)
#
# Everything is written under DATAHUB_STATE_DIR (default /var/lib/datahub-local),
# never inside the git work tree. A second run reuses what exists and takes seconds.
#
# Environment:
#   DATAHUB_STATE_DIR      where roots, data directories and logs live
#   DATAHUB_DEBIAN_MIRROR  Debian mirror for the trixie root; defaults to the
#                          mirror this machine's own apt sources use
set -euo pipefail

STATE_DIR=${DATAHUB_STATE_DIR:-/var/lib/datahub-local}
ROOT=$STATE_DIR/timescale-root
# Written only after debootstrap succeeded, so an interrupted run is redone cleanly.
ROOT_MARKER=$ROOT/.datahub-root-complete
LOG=$STATE_DIR/provision.log

SUITE=trixie
ROOT_PACKAGES=postgresql-17,postgresql-17-timescaledb
HOST_PACKAGES=(ca-certificates mosquitto mosquitto-clients debootstrap postgresql-15)

say() { printf '[provision] %s\n' "$*"; }
die() {
    printf '[provision] error: %s\n' "$*" >&2
    exit 1
}

# Print the tail of the log and fail; used when a quiet step goes wrong.
die_with_log() {
    printf '[provision] error: %s; last lines of %s:\n' "$1" "$LOG" >&2
    tail -n 25 "$LOG" | sed 's/^/    /' >&2
    exit 1
}

is_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# install_missing LABEL PACKAGE...: apt-get install those of the packages not installed yet.
install_missing() {
    local label=$1 missing=() pkg
    shift
    for pkg in "$@"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        say "$label: already installed"
        return
    fi
    say "$label: installing ${missing[*]}"
    {
        echo "== $(date -Is) apt-get update && apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update &&
            apt-get install -y --no-install-recommends "${missing[@]}"
    } </dev/null >>"$LOG" 2>&1 || die_with_log "apt-get failed"
}

install_host_packages() {
    install_missing "host packages" "${HOST_PACKAGES[@]}"
}

# Node.js and npm build the dashboard (make web). A Node.js from elsewhere (e.g. NodeSource,
# whose package brings npm along) is used as it is: Debian's npm would conflict with it.
install_nodejs() {
    if command -v node >/dev/null && command -v npm >/dev/null; then
        say "nodejs: already installed (node $(node --version), npm $(npm --version))"
        return
    fi
    install_missing nodejs nodejs npm
}

# Debian's Chromium, driven by Playwright in the dashboard's browser tests.
install_chromium() {
    install_missing chromium chromium
}

# PgBouncer in front of the local primary and replica (deploy/services.sh starts its own
# instance on 127.0.0.4; the package's system service is left as the package set it up).
install_pgbouncer() {
    install_missing pgbouncer pgbouncer
}

# systemd-analyze checks the unit files of deploy/systemd offline (the tests run it).
install_systemd_analyze() {
    if command -v systemd-analyze >/dev/null; then
        say "systemd: already installed ($(systemd-analyze --version | head -n 1))"
        return
    fi
    install_missing systemd systemd
}

# Print the first URI of the apt source that serves this release's main suite
# (deb822 .sources first, then one-line .list files). Security and third-party
# entries don't list the bare codename as a suite, so they are skipped.
host_debian_mirror() {
    local codename uri=""
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    [[ -n $codename ]] || return 1
    shopt -s nullglob
    local sources=(/etc/apt/sources.list.d/*.sources) lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
    shopt -u nullglob
    if ((${#sources[@]})); then
        uri=$(awk -v codename="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    split(line, kv, ":")
                    key = tolower(kv[1]); value = substr(line, length(kv[1]) + 2)
                    if (key == "types") types = value
                    else if (key == "uris") uris = value
                    else if (key == "suites") suites = value
                    else if (key == "enabled") enabled = tolower(value)
                }
                if (enabled ~ /no/ || (" " types " ") !~ /[ \t]deb[ \t]/) next
                if ((" " suites " ") !~ ("[ \t]" codename "[ \t]")) next
                split(uris, u, /[ \t]+/)
                for (j = 1; j in u; j++) if (u[j] != "") { print u[j]; exit }
            }' "${sources[@]}")
    fi
    if [[ -z $uri ]]; then
        local file
        for file in "${lists[@]}"; do
            [[ -f $file ]] || continue
            # deb [options] URI SUITE COMPONENT...
            uri=$(awk -v codename="$codename" '
                $1 == "deb" {
                    f = 2
                    if ($f ~ /^\[/) { while ($f !~ /\]$/) f++; f++ }
                    if ($(f + 1) == codename) { print $f; exit }
                }' "$file")
            [[ -n $uri ]] && break
        done
    fi
    [[ -n $uri ]] && printf '%s\n' "${uri%/}"
}

root_is_complete() {
    [[ -f $ROOT_MARKER &&
        -x $ROOT/usr/lib/postgresql/17/bin/postgres &&
        -f $ROOT/usr/lib/postgresql/17/lib/timescaledb.so ]]
}

# Unmount anything left mounted under the root (debootstrap's /proc and /sys
# after an interrupted run, or services.sh's mounts), deepest first.
unmount_root() {
    local target
    while read -r target; do
        umount "$target" || umount -l "$target"
    done < <(awk -v root="$ROOT/" 'index($2 "/", root) == 1 { print $2 }' /proc/self/mounts | sort -r)
    if awk -v root="$ROOT/" 'index($2 "/", root) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
        die "could not unmount everything under $ROOT; refusing to remove it"
    fi
}

make_timescale_root() {
    if root_is_complete; then
        say "timescale root: reusing $ROOT"
        return
    fi
    local mirror=${DATAHUB_DEBIAN_MIRROR:-}
    if [[ -z $mirror ]]; then
        mirror=$(host_debian_mirror) ||
            die "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list; set DATAHUB_DEBIAN_MIRROR"
    fi
    if [[ -e $ROOT ]]; then
        say "timescale root: removing an incomplete root"
        unmount_root
        # --one-file-system: never follow a mount we failed to see into the host.
        rm -rf --one-file-system "$ROOT"
    fi
    # debootstrap fetches with wget, which ignores apt's proxy setting.
    local http_proxy="" https_proxy=""
    eval "$(apt-config shell http_proxy Acquire::http::Proxy https_proxy Acquire::https::Proxy)"
    [[ -n $http_proxy ]] && export http_proxy
    [[ -n $https_proxy ]] && export https_proxy

    say "timescale root: debootstrap $SUITE from $mirror (about a minute)"
    local started=$SECONDS
    {
        echo "== $(date -Is) debootstrap --variant=minbase --include=$ROOT_PACKAGES $SUITE $ROOT $mirror"
        debootstrap --variant=minbase --include="$ROOT_PACKAGES" "$SUITE" "$ROOT" "$mirror"
    } </dev/null >>"$LOG" 2>&1 || {
        unmount_root
        die_with_log "debootstrap failed (the partial root is removed on the next run)"
    }
    # Package scripts may leave mounts behind; services.sh makes its own.
    unmount_root
    [[ -x $ROOT/usr/lib/postgresql/17/bin/postgres && -f $ROOT/usr/lib/postgresql/17/lib/timescaledb.so ]] ||
        die_with_log "debootstrap finished but PostgreSQL 17 or TimescaleDB is missing from the root"
    date -Is >"$ROOT_MARKER"
    say "timescale root: built in $((SECONDS - started))s"
}

main() {
    ((EUID == 0)) || die "run as root (needs apt-get, debootstrap and chroot)"
    local started=$SECONDS
    mkdir -p "$STATE_DIR"
    chmod 0755 "$STATE_DIR"
    # One provisioning at a time: two debootstraps into one directory would clash.
    exec 8>"$STATE_DIR/.provision.lock"
    flock -w 900 8 || die "another provision.sh holds $STATE_DIR/.provision.lock"
    say "state in $STATE_DIR (apt and debootstrap output: $LOG)"

    local services=() arg
    for arg in "$@"; do
        case $arg in
        nodejs | chromium | pgbouncer | systemd) ;;
        mosquitto | timescaledb | postgres | replica) services+=("$arg") ;;
        *) die "unknown argument $arg (mosquitto, timescaledb, postgres, replica, pgbouncer, nodejs, chromium, systemd)" ;;
        esac
    done
    if (($# == 0 || ${#services[@]} > 0)); then
        install_host_packages
    fi
    if (($# == 0)) || [[ " $* " == *" nodejs "* ]]; then
        install_nodejs
    fi
    if (($# == 0)) || [[ " $* " == *" chromium "* ]]; then
        install_chromium
    fi
    if (($# == 0)) || [[ " $* " == *" pgbouncer "* ]]; then
        install_pgbouncer
    fi
    if (($# == 0)) || [[ " $* " == *" systemd "* ]]; then
        install_systemd_analyze
    fi
    # The trixie root is large and slow to make: only when TimescaleDB is to run here.
    if (($# == 0)) || [[ " $* " == *" timescaledb "* || " $* " == *" replica "* ]]; then
        make_timescale_root
        local pg_version ts_version
        pg_version=$(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Version}' postgresql-17)
        ts_version=$(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Version}' postgresql-17-timescaledb)
        say "timescaledb root: postgresql-17 $pg_version, timescaledb $ts_version"
    fi
    say "ready in $((SECONDS - started))s: $(mosquitto -h 2>/dev/null | head -n 1)"
}

main "$@"
