#!/usr/bin/env bash
# Back up and restore datahub's database cluster (PostgreSQL with TimescaleDB): verified
# base backups plus a WAL archive, from which a restore replays to the end of the archive
# or to a chosen moment.
#
# Usage:
#   backup.sh base DIR                      take a base backup into DIR/base/<UTC time>Z
#   backup.sh archive-wal PATH ARCHIVE      the server's archive_command: copy the WAL file
#                                           PATH into ARCHIVE, once, durably
#   backup.sh restore DIR DATA [--base NAME] [--target-time TIME] [--no-archive]
#                                           restore a base backup of DIR into the new data
#                                           directory DATA, set to recover from DIR/wal
#   backup.sh prune DIR KEEP                keep the newest KEEP base backups and the WAL
#                                           from the oldest of them on; delete the rest
#   backup.sh list DIR                      the base backups and the WAL archive
#
# DIR holds base/ (one plain-format data directory per backup, with its manifest,
# checked by pg_verifybackup) and wal/ (the archive). On the database server:
#
#   archive_mode = on                    (needs a restart)
#   archive_command = '/path/to/backup.sh archive-wal "%p" "DIR/wal"'
#   archive_timeout = 60                 (a segment at least once a minute: the most
#                                         that is lost with the server's disk)
#
# Paths are those the server sees. The connection for `base` comes from libpq's
# environment (PGHOST, PGPORT, PGUSER, PGPASSFILE...) or DATAHUB_BACKUP_CONNINFO; it needs
# the REPLICATION attribute. Run as root, the PostgreSQL tools run as DATAHUB_PG_USER
# (postgres), who must own DIR.
#
# Environment:
#   DATAHUB_PG_BIN           PostgreSQL's programs (default /usr/lib/postgresql/17/bin)
#   DATAHUB_PG_USER          the server's OS user (default postgres)
#   DATAHUB_BACKUP_CONNINFO  libpq connection string for `base` (default: from PG*)
#   DATAHUB_PG_ROOT          a root directory the server runs in through chroot (the local
#                            TimescaleDB of deploy/services.sh); DIR and DATA are then
#                            paths inside it
#
# A restored server replays the archive, then promotes itself to a new timeline and
# (unless --no-archive) archives its own WAL into the same archive. Restores are proven by
# tests/deploy/test_backup.py.
set -euo pipefail

PG_BIN=${DATAHUB_PG_BIN:-/usr/lib/postgresql/17/bin}
PG_USER=${DATAHUB_PG_USER:-postgres}
PG_ROOT=${DATAHUB_PG_ROOT:-}
CONNINFO=${DATAHUB_BACKUP_CONNINFO:-}

say() { printf '[backup] %s\n' "$*" >&2; }
die() {
    printf '[backup] error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n 's/^#   backup.sh/backup.sh/p' "$0" >&2
    exit 2
}

# The host's path of a path the server sees.
host_path() { printf '%s%s' "$PG_ROOT" "$1"; }

# Run a command as the server's user, in its root if it has one. The caller's PG*
# variables pass through; nothing else of the environment does in a root.
as_pg() {
    if [[ -n $PG_ROOT ]]; then
        ((EUID == 0)) || die "DATAHUB_PG_ROOT needs root (chroot)"
        local env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8) name
        for name in $(compgen -e | grep '^PG' || true); do env+=("$name=${!name}"); done
        (cd / && "${env[@]}" chroot "$PG_ROOT" /usr/sbin/runuser -u "$PG_USER" -- "$@")
    elif ((EUID == 0)) && [[ $(id -un) != "$PG_USER" ]]; then
        (cd / && runuser -u "$PG_USER" -- "$@")
    else
        "$@"
    fi
}

# A directory the server's user owns, made if missing.
pg_dir() {
    as_pg mkdir -p -m 0700 "$1"
}

# The names of the complete base backups, oldest first (names sort by time).
bases() {
    local dir
    dir=$(host_path "$1/base")
    [[ -d $dir ]] || return 0
    find "$dir" -mindepth 1 -maxdepth 1 -type d -name '*Z' -printf '%f\n' | sort
}

# The WAL file a base backup starts in: what a restore of it needs first.
start_wal_file() {
    sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\))$/\1/p' "$(host_path "$1/backup_label")"
}

cmd_base() {
    (($# == 1)) || usage
    local dir=$1 name partial
    pg_dir "$dir/base"
    pg_dir "$dir/wal"
    # Names are to the second and sort by time: a backup that follows one made within
    # the same second (a small database backs up in less) takes the next second's name.
    name=$(date -u +%Y%m%dT%H%M%SZ)
    while [[ -e $(host_path "$dir/base/$name") || -e $(host_path "$dir/base/$name.partial") ]]; do
        sleep 0.2
        name=$(date -u +%Y%m%dT%H%M%SZ)
    done
    partial=$dir/base/$name.partial
    say "base backup into $dir/base/$name"
    # Plain format, so pg_verifybackup can check every file against the manifest; -X stream
    # puts the WAL of the backup's own duration in it, so each base restores on its own.
    as_pg "$PG_BIN/pg_basebackup" ${CONNINFO:+-d "$CONNINFO"} -D "$partial" -Fp -X stream \
        -c fast --label="datahub $name" --manifest-checksums=CRC32C ||
        die "pg_basebackup failed; $partial is left for inspection"
    as_pg "$PG_BIN/pg_verifybackup" --quiet "$partial" || die "pg_verifybackup rejected $partial"
    as_pg mv "$partial" "$dir/base/$name"
    say "base backup $name complete, starting at WAL file $(start_wal_file "$dir/base/$name")"
    echo "$name"
}

# archive_command: exit 0 only once the file is safely in the archive. A file already
# archived with the same content is success (the server may retry after a crash); with
# other content it is an error, never an overwrite.
cmd_archive_wal() {
    (($# == 2)) || usage
    local src=$1 archive=$2 name dest
    name=$(basename "$src")
    dest=$archive/$name
    if [[ -e $dest ]]; then
        cmp -s "$src" "$dest" && return 0
        die "$dest exists with other content; refusing to overwrite it"
    fi
    cp "$src" "$dest.partial"
    sync "$dest.partial"
    mv "$dest.partial" "$dest"
    sync "$archive"
}

cmd_restore() {
    (($# >= 2)) || usage
    local dir=$1 data=$2 base="" target_time="" archive=yes
    shift 2
    while (($#)); do
        case $1 in
        --base) base=${2:?--base needs a name} && shift 2 ;;
        --target-time) target_time=${2:?--target-time needs a time} && shift 2 ;;
        --no-archive) archive=no && shift ;;
        *) usage ;;
        esac
    done
    [[ -n $base ]] || base=$(bases "$dir" | tail -n 1)
    [[ -n $base && -d $(host_path "$dir/base/$base") ]] || die "no base backup ${base:+$base }in $dir/base"
    if [[ -e $(host_path "$data") ]] && [[ -n $(ls -A "$(host_path "$data")") ]]; then
        die "$data exists and is not empty: restore into a new directory"
    fi
    say "restoring base backup $base into $data"
    as_pg "$PG_BIN/pg_verifybackup" --quiet "$dir/base/$base" || die "pg_verifybackup rejected $dir/base/$base"
    pg_dir "$data"
    as_pg chmod 0700 "$data"
    as_pg cp -a "$dir/base/$base/." "$data/"
    as_pg rm -f "$data/backup_manifest"
    # Recovery settings: postgresql.auto.conf is read last, so they win over the copy's own.
    {
        echo "# Added by deploy/backup.sh restore from $base on $(date -u +%FT%TZ)."
        echo "restore_command = 'cp \"$dir/wal/%f\" \"%p\"'"
        echo "recovery_target_timeline = 'latest'"
        echo "recovery_target_action = 'promote'"
        [[ -z $target_time ]] || echo "recovery_target_time = '$target_time'"
        # A copy for inspection must not write into the archive of the server it came from.
        [[ $archive == yes ]] || echo "archive_mode = off"
    } | as_pg tee -a "$data/postgresql.auto.conf" >/dev/null
    as_pg touch "$data/recovery.signal"
    say "restored: start the server on $data; it replays $dir/wal${target_time:+ up to $target_time}, then promotes itself"
}

cmd_prune() {
    (($# == 2)) || usage
    local dir=$1 keep=$2 all oldest first name
    [[ $keep =~ ^[1-9][0-9]*$ ]] || die "KEEP must be a positive number"
    mapfile -t all < <(bases "$dir")
    ((${#all[@]} > keep)) || {
        say "${#all[@]} base backups, none to prune"
        return 0
    }
    for name in "${all[@]:0:${#all[@]}-keep}"; do
        say "deleting base backup $name"
        as_pg rm -rf "$dir/base/$name"
    done
    oldest=${all[${#all[@]}-keep]}
    first=$(start_wal_file "$dir/base/$oldest")
    [[ -n $first ]] || die "no start WAL file in $dir/base/$oldest/backup_label"
    say "deleting archived WAL before $first (the start of $oldest)"
    as_pg "$PG_BIN/pg_archivecleanup" "$dir/wal" "$first"
}

cmd_list() {
    (($# == 1)) || usage
    local dir=$1 name wal
    for name in $(bases "$dir"); do
        printf 'base %s  starts at %s  %s\n' "$name" "$(start_wal_file "$dir/base/$name")" \
            "$(du -sh "$(host_path "$dir/base/$name")" | cut -f1)"
    done
    wal=$(host_path "$dir/wal")
    if [[ -d $wal ]]; then
        printf 'wal  %s files, newest %s\n' "$(find "$wal" -maxdepth 1 -type f ! -name '*.partial' | wc -l)" \
            "$(find "$wal" -maxdepth 1 -type f -name '[0-9A-F]*' ! -name '*.partial' -printf '%f\n' | sort | tail -n 1)"
    fi
}

main() {
    (($# >= 1)) || usage
    local command=$1
    shift
    case $command in
    base) cmd_base "$@" ;;
    archive-wal) cmd_archive_wal "$@" ;;
    restore) cmd_restore "$@" ;;
    prune) cmd_prune "$@" ;;
    list) cmd_list "$@" ;;
    *) usage ;;
    esac
}

main "$@"
