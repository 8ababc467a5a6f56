#!/bin/sh
# etcd-backup.sh — the one backup script: the backup CronJob, the weekly
# verification CronJob and the DR drill all run it.
#
#   etcd-backup.sh upload FILE        upload a snapshot etcdctl took (the CronJob:
#                                     its etcd-image steps took and checked it)
#   etcd-backup.sh fetch-latest FILE  download the newest snapshot (the verify CronJob)
#   etcd-backup.sh backup             snapshot a healthy member, verify, upload (all in one)
#   etcd-backup.sh latest             print the newest snapshot's key
#   etcd-backup.sh fetch KEY FILE     download a snapshot
#   etcd-backup.sh verify-latest      fetch the newest snapshot and prove it restores
#
# Environment:
#   ETCD_ENDPOINTS     comma-separated https:// client URLs (backup)
#   ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY   the etcd-client-backup certificate
#   BACKUP_TARGET      s3://bucket/prefix or file:///directory
#   CLUSTER_NAME       goes into every object key
#   SSE_KMS_KEY_ID     KMS key for SSE-KMS uploads (AWS S3); empty: no SSE header
#                      (an S3-compatible server encrypts as it is configured to)
#   AWS_ENDPOINT_URL   an S3-compatible endpoint instead of AWS (optional), with
#                      AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
#   RETENTION_DAYS     file:// targets: upload deletes this cluster's snapshots
#                      older than this many days (S3's lifecycle does it there)
#   WORK_DIR           scratch space (default /tmp/etcd-backup)
# upload and fetch-latest need only sh, coreutils and (s3 targets) the aws
# CLI, so they run on the AWS CLI's official image; backup and verify-latest
# also need etcdctl and etcdutl. Any failed step exits non-zero with a
# message naming the step.
set -eu

WORK_DIR=${WORK_DIR:-/tmp/etcd-backup}
CLUSTER_NAME=${CLUSTER_NAME:?CLUSTER_NAME is required}
BACKUP_TARGET=${BACKUP_TARGET:?BACKUP_TARGET is required (s3://bucket/prefix or file:///dir)}
BACKUP_TARGET=${BACKUP_TARGET%/}

fail() { echo "etcd-backup: FAILED: $*" >&2; exit 1; }
log() { echo "etcd-backup: $*" >&2; }

aws_s3() {
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then aws --endpoint-url "$AWS_ENDPOINT_URL" s3 "$@"; else aws s3 "$@"; fi
}

# status FILE: prints "hash revision totalKey" from etcdutl's JSON.
status() {
  json=$(etcdutl snapshot status "$1" -w json) || fail "etcdutl snapshot status $1"
  hash=$(echo "$json" | sed -n 's/.*"hash":\([0-9]*\).*/\1/p')
  rev=$(echo "$json" | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
  keys=$(echo "$json" | sed -n 's/.*"totalKey":\([0-9]*\).*/\1/p')
  [ -n "$hash" ] && [ -n "$rev" ] && [ -n "$keys" ] || fail "cannot read hash/revision/keys from: $json"
  [ "$keys" -gt 0 ] || fail "snapshot $1 holds no keys"
  echo "$hash $rev $keys"
}

put() { # put FILE KEY
  case "$BACKUP_TARGET" in
    s3://*)
      # AWS: the bucket's KMS key (its policy refuses anything else). An
      # S3-compatible server (no key): its own encryption; asking for
      # aws:kms there fails where no KMS is configured (MinIO without KES).
      if [ -n "${SSE_KMS_KEY_ID:-}" ]; then
        aws_s3 cp "$1" "$BACKUP_TARGET/$2" --only-show-errors --sse aws:kms --sse-kms-key-id "$SSE_KMS_KEY_ID"
      else
        aws_s3 cp "$1" "$BACKUP_TARGET/$2" --only-show-errors
      fi ;;
    file://*)
      dir=${BACKUP_TARGET#file://}
      mkdir -p "$(dirname "$dir/$2")" && cp "$1" "$dir/$2.tmp" && mv "$dir/$2.tmp" "$dir/$2" ;;
    *) fail "BACKUP_TARGET $BACKUP_TARGET: want s3://bucket/prefix or file:///dir" ;;
  esac || fail "upload of $2 to $BACKUP_TARGET"
  prune "$2"
}

# prune KEEP: on a file:// target, delete this cluster's snapshots (and
# their metadata) older than RETENTION_DAYS, never KEEP (the one just
# uploaded).
prune() {
  case "$BACKUP_TARGET" in file://*) ;; *) return 0 ;; esac
  [ -n "${RETENTION_DAYS:-}" ] || return 0
  dir=${BACKUP_TARGET#file://}
  find "$dir/$CLUSTER_NAME" -type f -name '*.db' -mmin +$((RETENTION_DAYS * 1440)) ! -path "$dir/$1" -print 2>/dev/null |
    while read -r old; do rm -f "$old" "$old.json" && log "pruned ${old#"$dir"/} (older than $RETENTION_DAYS days)"; done
}

latest() {
  case "$BACKUP_TARGET" in
    s3://*)
      # List first: a pipe would turn AccessDenied into "no snapshot".
      # (aws s3 ls exits 1 when nothing matches the prefix: that is "none".)
      mkdir -p "$WORK_DIR"
      listing=$(aws_s3 ls "$BACKUP_TARGET/$CLUSTER_NAME/" --recursive 2>"$WORK_DIR/ls-err") || {
        if [ -s "$WORK_DIR/ls-err" ]; then fail "listing $BACKUP_TARGET/$CLUSTER_NAME/: $(cat "$WORK_DIR/ls-err")"; fi
        listing=""
      }
      rm -f "$WORK_DIR/ls-err"
      echo "$listing" | awk '{print $4}' | grep '\.db$' | sort | tail -n 1 | sed "s|^${BACKUP_TARGET#s3://*/}/||" ;;
    file://*)
      [ -d "${BACKUP_TARGET#file://}" ] || fail "BACKUP_TARGET directory ${BACKUP_TARGET#file://} does not exist"
      (cd "${BACKUP_TARGET#file://}" && find "$CLUSTER_NAME" -name '*.db' 2>/dev/null | sort | tail -n 1) ;;
    *) fail "BACKUP_TARGET $BACKUP_TARGET: want s3://bucket/prefix or file:///dir" ;;
  esac
}

fetch() { # fetch KEY FILE
  case "$BACKUP_TARGET" in
    s3://*) aws_s3 cp "$BACKUP_TARGET/$1" "$2" --only-show-errors ;;
    file://*) cp "${BACKUP_TARGET#file://}/$1" "$2" ;;
  esac || fail "download of $1 from $BACKUP_TARGET"
}

# upload FILE: the snapshot under a timestamped key, with a metadata object
# (its sha256, so a download can be checked without etcd's tools).
upload() {
  [ -s "$1" ] || fail "snapshot $1 is missing or empty"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  key="$CLUSTER_NAME/$(date -u +%Y/%m/%d)/etcd-$CLUSTER_NAME-$stamp.db"
  sum=$(sha256sum "$1" | cut -d' ' -f1) || fail "sha256 of $1"
  printf '{"cluster":"%s","time":"%s","sha256":"%s","bytes":%s}\n' \
    "$CLUSTER_NAME" "$stamp" "$sum" "$(wc -c <"$1" | tr -d ' ')" >"$1.json"
  put "$1" "$key"
  put "$1.json" "$key.json"
  log "OK $key sha256=$sum"
  echo "$key"
}

fetch_latest() { # fetch_latest FILE
  key=$(latest) || fail "listing $BACKUP_TARGET"
  [ -n "$key" ] || fail "no snapshot of $CLUSTER_NAME under $BACKUP_TARGET"
  fetch "$key" "$1"
  log "OK fetched $key"
}

backup() {
  : "${ETCD_ENDPOINTS:?ETCD_ENDPOINTS is required}"
  mkdir -p "$WORK_DIR"
  snap="$WORK_DIR/snapshot.db"
  rm -f "$snap" "$snap.part"
  # A healthy member, so one sick member never blocks the backup.
  member=""
  for ep in $(echo "$ETCD_ENDPOINTS" | tr ',' ' '); do
    if etcdctl --endpoints="$ep" --dial-timeout=5s --command-timeout=10s endpoint health >/dev/null 2>&1; then
      member=$ep; break
    fi
    log "member $ep is not healthy, trying the next"
  done
  [ -n "$member" ] || fail "no healthy etcd member among $ETCD_ENDPOINTS"
  etcdctl --endpoints="$member" --dial-timeout=10s --command-timeout=10m snapshot save "$snap" >/dev/null ||
    fail "etcdctl snapshot save from $member"
  set -- $(status "$snap")
  hash=$1 rev=$2 keys=$3
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  key="$CLUSTER_NAME/$(date -u +%Y/%m/%d)/etcd-$CLUSTER_NAME-$stamp-rev$rev.db"
  printf '{"cluster":"%s","time":"%s","member":"%s","hash":%s,"revision":%s,"totalKey":%s,"bytes":%s}\n' \
    "$CLUSTER_NAME" "$stamp" "$member" "$hash" "$rev" "$keys" "$(wc -c <"$snap" | tr -d ' ')" >"$snap.json"
  put "$snap" "$key"
  put "$snap.json" "$key.json"
  log "OK $key hash=$hash revision=$rev keys=$keys"
  echo "$key"
}

verify_latest() {
  key=$(latest) || fail "listing $BACKUP_TARGET"
  [ -n "$key" ] || fail "no snapshot of $CLUSTER_NAME under $BACKUP_TARGET"
  mkdir -p "$WORK_DIR"
  rm -rf "$WORK_DIR/verify" "$WORK_DIR/latest.db"
  fetch "$key" "$WORK_DIR/latest.db"
  set -- $(status "$WORK_DIR/latest.db")
  etcdutl snapshot restore "$WORK_DIR/latest.db" --data-dir "$WORK_DIR/verify" >/dev/null 2>&1 ||
    fail "restore of $key into a scratch data dir"
  rm -rf "$WORK_DIR/verify" "$WORK_DIR/latest.db"
  log "OK verified $key hash=$1 revision=$2 keys=$3"
}

case "${1:-backup}" in
  upload) [ $# -eq 2 ] || fail "usage: upload FILE"; upload "$2" ;;
  fetch-latest) [ $# -eq 2 ] || fail "usage: fetch-latest FILE"; fetch_latest "$2" ;;
  backup) backup ;;
  latest) latest ;;
  fetch) [ $# -eq 3 ] || fail "usage: fetch KEY FILE"; fetch "$2" "$3" ;;
  verify-latest) verify_latest ;;
  *) fail "unknown command $1 (upload, fetch-latest, backup, latest, fetch, verify-latest)" ;;
esac
