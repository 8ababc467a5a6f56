#!/bin/sh
# etcd-members: the membership Job, run before the StatefulSet takes a new
# etcd.replicas (the StatefulSet depends on it). A StatefulSet that shrinks
# deletes its highest pods, all at once (Parallel), while the cluster still
# counts them as members: 5 → 3 would leave no fault tolerance, 7 → 3 would
# lose the quorum for good. So every member that etcd.replicas does not keep
# is removed from the cluster first, one at a time, each as soon as etcd
# allows it (--strict-reconfig-check, on by default, refuses a removal that
# would cost the quorum); if one cannot be removed, the Job fails and so does
# the up, before any pod is deleted.
#
# No member answering is a first install (no pod exists yet) or a cluster
# that is down, which the Job cannot change: it says so and succeeds.
#
# Environment: ETCD_ENDPOINTS (the client URL of every member the cluster
# can have), KEEP_PEERS (the peer URLs of the members etcd.replicas keeps,
# comma-separated), ETCDCTL_CACERT/ETCDCTL_CERT/ETCDCTL_KEY.
# Needs sh, cut, sleep and etcdctl (the join image has them).
set -eu

log() { echo "etcd-members: $*" >&2; }

# field N of a line of etcdctl's simple format (scripts/etcd-join.sh).
field() {
	v=$(echo "$1" | cut -d, -f"$2")
	echo "${v# }"
}

# list N: the member list into $members, asked up to N times 2 s apart;
# fails if no member answered.
list() {
	tries=0
	until members=$(etcdctl --endpoints="$ETCD_ENDPOINTS" --dial-timeout=3s --command-timeout=5s member list 2>/dev/null); do
		tries=$((tries + 1))
		[ "$tries" -lt "$1" ] || return 1
		sleep 2
	done
}

list 3 || {
	log "no member answers: nothing to change (a first install, or a cluster that is down)"
	exit 0
}

kept() {
	case ",$KEEP_PEERS," in
	*",$1,"*) return 0 ;;
	esac
	return 1
}

removed=0
while IFS= read -r l; do
	[ -n "$l" ] || continue
	id=$(field "$l" 1)
	name=$(field "$l" 3)
	peer=$(field "$l" 4)
	kept "$peer" && continue
	log "removing member $id (${name:-never started}, $peer): etcd.replicas does not keep it"
	n=0
	until err=$(etcdctl --endpoints="$ETCD_ENDPOINTS" --dial-timeout=3s --command-timeout=15s member remove "$id" 2>&1 >/dev/null); do
		echo "$err" >&2
		# A removal answered by the member it removes can be committed and
		# still fail ("server stopped"): the next try finds it gone.
		case "$err" in *"member not found"*) break ;; esac
		n=$((n + 1))
		# Right after a change etcd answers "unhealthy cluster" until every
		# member has been connected for its health interval (5 s).
		[ "$n" -lt 60 ] || {
			log "FAILED: member $id could not be removed in 2 minutes; no pod was deleted"
			exit 1
		}
		sleep 2
	done
	removed=$((removed + 1))
done <<EOF
$members
EOF

# Removing the leader starts an election: the list may time out meanwhile
# (seen on the node: "context deadline exceeded", then a count of 0).
list 30 || {
	log "OK: removed $removed; the member list did not answer for a minute after it"
	exit 0
}
count=0
while IFS= read -r l; do
	[ -n "$l" ] && count=$((count + 1))
done <<EOF
$members
EOF
log "OK: removed $removed; the cluster has $count members"
