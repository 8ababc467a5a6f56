#!/bin/sh
# etcd-join: runs before etcd in every member's pod, with etcd's own
# arguments ("$@"). A member that starts with an empty data directory while
# its cluster runs without it has lost its data (a volume replaced or
# wiped): etcd started with --initial-cluster-state=new cannot rejoin, so
# this replaces the member through the cluster's API (remove, add) and
# syncs it here with --initial-cluster-state=existing. The etcd container
# then finds a data directory and starts as an ordinary restart, ignoring
# the --initial-cluster flags. A first start, or a member with its data,
# is left alone. A member is added as a learner, which does not count
# toward the quorum, and promoted once it has synced: a join that fails or
# is cut short (a bad certificate, its node lost) leaves the quorum as it
# was — a cluster of one growing to three would otherwise have none from
# the add until the new member ran.
#
# Environment: POD_NAME, ETCD_ENDPOINTS (every member's client URL, comma-
# separated), LOCAL_ENDPOINT (this member's client URL as seen from the
# pod), REPLICAS_FILE (etcd.replicas as the cluster's ConfigMap has it
# now), ETCDCTL_CACERT/ETCDCTL_CERT/ETCDCTL_KEY (etcdctl reads them).
# Needs sh, cut, rm, sleep, etcd and etcdctl (hack/backup-image has them).
set -eu

log() { echo "etcd-join: $POD_NAME: $*" >&2; }

# field N of a line of etcdctl's simple format: ID, status, name, peer
# URLs, client URLs, is learner (", "-separated; one URL each here).
field() {
	v=$(echo "$1" | cut -d, -f"$2")
	echo "${v# }"
}

# retry N runs a membership change until etcd takes it, at most N times
# 2 s apart: right after a change etcd answers "unhealthy cluster" until
# every member has been connected for its health interval (5 s), it
# refuses any change that would cost the quorum (--strict-reconfig-check,
# on by default), and it has room for one learner at a time (etcd 3.5), so
# members added together (etcd.replicas raised by more than one) sync one
# after the other.
retry() {
	limit=$1
	shift
	n=0
	until "$@"; do
		n=$((n + 1))
		[ "$n" -lt "$limit" ] || { log "gave up after $limit tries: $*"; return 1; }
		sleep 2
	done
}

data=""
peer=""
client=""
for a do
	case "$a" in
	--data-dir=*) data=${a#--data-dir=} ;;
	--initial-advertise-peer-urls=*) peer=${a#--initial-advertise-peer-urls=} ;;
	--advertise-client-urls=*) client=${a#--advertise-client-urls=} ;;
	esac
done
[ -n "$data" ] && [ -n "$peer" ] || { log "no --data-dir or --initial-advertise-peer-urls in etcd's arguments"; exit 1; }

# The other members' endpoints. Once this member's etcd runs as a learner
# it refuses membership calls (a learner serves status and serializable
# reads only), so etcdctl must not pick it.
others=""
ifs=$IFS
IFS=,
for e in $ETCD_ENDPOINTS; do
	[ "$e" = "$client" ] || others="${others:+$others,}$e"
done
IFS=$ifs

# own_line prints this member's line of a member list ($1; "" if absent).
own_line() {
	own=""
	while IFS= read -r l; do
		if [ -n "$l" ] && [ "$(field "$l" 4)" = "$peer" ]; then own=$l; fi
	done <<EOF
$1
EOF
	echo "$own"
}

# etcd's own test (wal.Exist): a member has its data when its WAL has a
# file. etcd makes member/snap before it writes the WAL, so a sync cut
# short (its pod deleted, the node lost) leaves member/ without one: etcd
# would then bootstrap afresh as a member of a new cluster, refused by its
# peers for good. Such a directory holds nothing and starts over.
has_wal() {
	for f in "$data/member/wal/"*.wal; do
		[ -e "$f" ] && return 0
	done
	return 1
}
# not_above_count stops a pod above etcd.replicas as it is now before it
# adds or empties anything: one of the StatefulSet's old size recreated
# (evicted, its node lost) after the membership Job removed its member and
# before the StatefulSet shrank. Adding it back would leave the cluster a
# member whose pod the StatefulSet deletes next; it waits for that instead.
not_above_count() {
	want=""
	[ -r "${REPLICAS_FILE:-}" ] && { IFS= read -r want <"$REPLICAS_FILE" || true; }
	if [ -n "$want" ] && [ "${POD_NAME##*-}" -ge "$want" ]; then
		log "above etcd.replicas ($want): not joining; the StatefulSet removes this pod"
		exit 1
	fi
}

# The only member (etcd.replicas is 1) has nobody to join or ask: etcd
# starts as itself, with its data or — a first start, or its data lost,
# which a backup restores (docs/runbook.md) — as a new cluster.
if [ -z "$others" ]; then
	log "the only member: etcd starts as itself"
	exit 0
fi

# A member with its data starts as itself, without asking anyone (a whole
# cluster restarting has nobody to ask) — unless the cluster answers at once
# and no longer counts it: the membership Job removed it when etcd.replicas
# went down (scripts/etcd-members.sh) and its volume stayed. etcd refuses
# such a member for good ("the member has been permanently removed"): it
# joins anew, from an empty directory, as a lost member does. A learner
# with its data synced in a join cut short before its promotion: it
# finishes that join (started as itself, nobody would promote it, and it
# would hold etcd's one learner place).
resume=""
if has_wal; then
	listed=yes
	if members=$(etcdctl --endpoints="$others" --dial-timeout=2s --command-timeout=5s member list 2>/dev/null) && [ -n "$members" ]; then
		own=$(own_line "$members")
		if [ -z "$own" ]; then
			listed=""
		elif [ "$(field "$own" 6)" = "true" ]; then
			resume=yes
		fi
	fi
	if [ -n "$resume" ]; then
		log "has its data and is still a learner (a join cut short before its promotion): finishing the join"
	elif [ -n "$listed" ]; then
		log "has its data; etcd starts as itself"
		exit 0
	else
		not_above_count
		log "has the data of a member the cluster removed (etcd.replicas went down): joining anew"
		rm -rf "$data/member"
	fi
fi

initial=""
if [ -z "$resume" ]; then
	if [ -d "$data/member" ]; then
		log "no WAL in $data/member (a sync cut short): starting it over"
		rm -rf "$data/member"
	fi

	# One unanswered read is not proof that no cluster runs: a network
	# policy may not yet know this new pod's address (a policy plugin learns
	# it from the API a moment after the pod starts). Concluding "a first
	# start" from it would start a member that lost its data as a new one,
	# which then crash-loops ("member … has already been bootstrapped"); so
	# ask a few times first (≈20 s, once, at a cluster's first start).
	tries=0
	until members=$(etcdctl --endpoints="$others" --dial-timeout=5s --command-timeout=5s member list 2>/dev/null); do
		tries=$((tries + 1))
		if [ "$tries" -ge 3 ]; then
			log "no running cluster answers: a first start (or the whole cluster is being restored)"
			exit 0
		fi
		sleep 2
	done

	line=$(own_line "$members")
	id=$(field "$line" 1)
	name=$(field "$line" 3)
	clients=$(field "$line" 5)
	if [ -n "$line" ] && [ -n "$name" ] && [ -z "$clients" ]; then
		log "a member of the initial cluster that never ran: a first start"
		exit 0
	fi

	if [ -n "$line" ] && [ -n "$clients" ]; then
		# It ran before (it published its client URLs) and its data is gone.
		log "data lost; replacing member $id"
		retry 60 etcdctl --endpoints="$others" member remove "$id"
		line=""
	fi
	# Membership as the cluster has it now, every member (etcd checks that
	# the count matches): as `etcdctl member add` prints it. A learner place
	# frees when the learner before this one is promoted: up to 5 minutes.
	if [ -z "$line" ]; then
		not_above_count
		added=$(retry 150 etcdctl --endpoints="$others" member add "$POD_NAME" --peer-urls="$peer" --learner)
		log "added as a new member, a learner until it has synced"
		while IFS= read -r l; do
			case "$l" in
			ETCD_INITIAL_CLUSTER=*)
				initial=${l#ETCD_INITIAL_CLUSTER=}
				initial=${initial#\"}
				initial=${initial%\"}
				;;
			esac
		done <<EOF
$added
EOF
	fi
fi
# Added by an earlier run cut short (ours has no name yet), or finishing
# one: the list.
if [ -z "$initial" ]; then
	while IFS= read -r l; do
		[ -n "$l" ] || continue
		n=$(field "$l" 3)
		u=$(field "$l" 4)
		if [ "$u" = "$peer" ]; then n=$POD_NAME; fi
		initial="${initial:+$initial,}$n=$u"
	done <<EOF
$(etcdctl --endpoints="$others" member list)
EOF
fi

# promoted succeeds once this member votes: a learner is promoted as soon
# as the leader finds it in sync (etcd refuses before); a member added by
# an older join, or promoted by a run cut short, already votes.
promoted() {
	own=$(own_line "$(etcdctl --endpoints="$others" --dial-timeout=2s --command-timeout=5s member list 2>/dev/null)")
	[ -n "$own" ] || return 1
	[ "$(field "$own" 6)" = "true" ] || return 0
	etcdctl --endpoints="$others" --dial-timeout=2s --command-timeout=5s member promote "$(field "$own" 1)" >/dev/null 2>&1 || return 1
	log "synced; promoted to a voting member"
}

# Sync: etcd with the pod's arguments, joining the existing cluster.
for a do
	shift
	case "$a" in
	--initial-cluster=* | --initial-cluster-state=*) ;;
	*) set -- "$@" "$a" ;;
	esac
done
# A pod that replaces a lost one has a new address, which the peers find
# for its name only once DNS has it (CoreDNS caches answers, 30 s by
# default); until then they refuse its certificate (etcd matches a peer's
# DNS names against its address) and etcd, unable to fetch the
# membership, exits having written nothing: it is started again. One that
# exits after writing its WAL took part in raft and is not started over.
tries=0
while :; do
	etcd "$@" --initial-cluster="$initial" --initial-cluster-state=existing &
	pid=$!
	joined=""
	votes=""
	while kill -0 "$pid" 2>/dev/null; do
		if [ -z "$votes" ] && promoted; then votes=yes; fi
		if [ -n "$votes" ] && etcdctl --endpoints="$LOCAL_ENDPOINT" --dial-timeout=2s --command-timeout=5s endpoint health >/dev/null 2>&1; then
			joined=yes
			break
		fi
		tries=$((tries + 1))
		[ "$tries" -lt 300 ] || { kill "$pid"; log "not joined after 300 s"; exit 1; }
		sleep 1
	done
	[ -z "$joined" ] || break
	wait "$pid" || true
	if has_wal; then
		log "etcd exited before it had joined, after writing its WAL"
		exit 1
	fi
	tries=$((tries + 5))
	[ "$tries" -lt 300 ] || { log "etcd exited before it had joined, for 300 s"; exit 1; }
	log "etcd exited before it had joined (its peers may not yet resolve this pod's address); again in 5 s"
	rm -rf "$data/member"
	sleep 5
done
kill -TERM "$pid"
wait "$pid" || true
log "joined and synced; etcd starts as itself"
