#!/bin/sh
# etcd-rollout: the rollout Job, run by every up that changes the members'
# pod template or their count (the Job's spec holds both). The StatefulSet
# updates no pod itself (updateStrategy OnDelete): its own rolling update
# restarts the highest-ordinal member first whatever the others' state, so
# with etcd-0 down (its zone lost, its pod crash-looping) an up that touched
# the template restarted etcd-2, then etcd-1: two of three members down,
# etcd without a quorum and kcp without writes until each was back. This
# restarts members onto the new template in an order that never costs one:
#   1. a member that is not Ready first — restarting it costs nothing, and
#      the new template may be what it lacked (with the quorum lost, every
#      member: the new template may be the fix);
#   2. a Ready member only while every member is Ready, the highest ordinal
#      first, one at a time, each back Ready before the next.
# Members that stay not Ready for $WAIT seconds stop the rollout: the Job
# fails, and with it the up, the members still on the previous template
# serving on. The next up runs it again (the Job is replaced while it is
# not complete) and finishes once that member is back.
#
# Environment: NAMESPACE, STATEFULSET, REPLICAS (etcd.replicas), WAIT,
# JOIN_IMAGE (named in the error when the image has no kubectl).
# Needs sh, sleep, date and kubectl (the join image has them, hack/backup-image),
# and get/delete on the members' pods and get on the StatefulSet.
set -eu

log() { echo "etcd-rollout: $*" >&2; }

command -v kubectl >/dev/null 2>&1 || {
	log "no kubectl in etcd.joinImage ($JOIN_IMAGE): build it from hack/backup-image, which adds Kubernetes' kubectl"
	exit 1
}

# No --request-timeout: any client override makes kubectl take its flags
# for a configuration and skip the in-cluster one (it then asks
# localhost:8080); the Job's deadline bounds a hung request.
k() { kubectl --namespace="$NAMESPACE" "$@"; }
errors=${TMPDIR:-/tmp}/etcd-rollout.err

# revision sets rev to the revision the StatefulSet made of its current
# template, once its controller has seen the template (observedGeneration);
# read on every pass, so a template changed meanwhile (a later up) is the
# one rolled out. It fails, saying why in $why, until then.
revision() {
	if ! s=$(k get statefulset "$STATEFULSET" -o 'jsonpath={.metadata.generation}|{.status.observedGeneration}|{.status.updateRevision}' 2>"$errors"); then
		why="reading StatefulSet $STATEFULSET: $(cat "$errors")"
		return 1
	fi
	generation=${s%%|*}
	s=${s#*|}
	observed=${s%%|*}
	updated=${s#*|}
	if [ -z "$updated" ] || [ "$generation" != "$observed" ]; then
		why="StatefulSet $STATEFULSET: its controller has not taken generation $generation yet (observed: ${observed:-none})"
		return 1
	fi
	[ "$updated" = "${rev:-}" ] || log "rolling $REPLICAS member(s) onto revision $updated"
	rev=$updated
}

members=""
i=0
while [ "$i" -lt "$REPLICAS" ]; do
	members="$members $STATEFULSET-$i"
	i=$((i + 1))
done

# state P sets found (yes/""), pod_rev, ready (True/…), gone (its
# deletionTimestamp) for pod P. Asked one pod at a time: one name comes
# back as the object, several as a list.
state() {
	found=""
	pod_rev=""
	ready=""
	gone=""
	if ! s=$(k get pod "$1" --ignore-not-found -o 'jsonpath={.metadata.name}|{.metadata.labels.controller-revision-hash}|{.status.conditions[?(@.type=="Ready")].status}|{.metadata.deletionTimestamp}' 2>"$errors"); then
		why="reading pod $1: $(cat "$errors")"
		return 1
	fi
	[ -n "$s" ] || return 0
	found=yes
	s=${s#*|}
	pod_rev=${s%%|*}
	s=${s#*|}
	ready=${s%%|*}
	gone=${s#*|}
}

# restart P: delete the pod; the StatefulSet makes it again on the new
# template. A failure (the API, the pod already gone) is seen next pass.
# The wait for the members down starts again.
restart() {
	k delete pod "$1" --wait=false --ignore-not-found >/dev/null 2>"$errors" || log "deleting pod $1: $(cat "$errors")"
	was_down=restarted
}

# Clock time: a pass takes a few kubectl calls, seconds each.
now() { date +%s; }

was_down=""
down_since=$(now)
asked_at=$(now)
rev=""
while :; do
	# Highest ordinal first in each list.
	stale_down=""
	stale_up=""
	down=""
	asked=""
	if revision; then
		asked=yes
		for p in $members; do
			state "$p" || { asked=""; break; }
			if [ -z "$found" ] || [ -n "$gone" ] || [ "$ready" != True ]; then
				down="$p${down:+ $down}"
			fi
			if [ -n "$found" ] && [ -z "$gone" ] && [ "$pod_rev" != "$rev" ]; then
				if [ "$ready" = True ]; then stale_up="$p${stale_up:+ $stale_up}"; else stale_down="$p${stale_down:+ $stale_down}"; fi
			fi
		done
	fi
	[ -z "$asked" ] || asked_at=$(now)
	if [ -z "$asked" ]; then
		# The API did not answer, or the controller is behind: ask again.
		[ $(($(now) - asked_at)) -lt 120 ] || { log "for 120 s: $why"; exit 1; }
	elif [ -n "$stale_down" ]; then
		set -- $stale_down
		log "$1 is not Ready and on the previous template: restarting it first (it costs the cluster nothing)"
		restart "$1"
	elif [ -n "$down" ]; then
		# Progress (a member back, a new one joined) restarts the clock.
		if [ "$down" != "$was_down" ]; then
			was_down=$down
			down_since=$(now)
		fi
		if [ $(($(now) - down_since)) -ge "$WAIT" ]; then
			log "not Ready for ${WAIT} s: $down"
			if [ -n "$stale_up" ]; then
				log "not restarting $stale_up (still on the previous template and serving): with a member down, restarting one more would cost etcd its fault tolerance or its quorum. The next up finishes the rollout once every member is Ready (docs/runbook.md \"Rolling etcd onto a new pod template\")."
			else
				log "every member is on the new template; it does not become Ready (kubectl -n $NAMESPACE describe pod / logs)."
			fi
			exit 1
		fi
	elif [ -n "$stale_up" ]; then
		set -- $stale_up
		log "every member Ready: restarting $1 onto the new template"
		restart "$1"
	else
		log "OK: all $REPLICAS member(s) Ready on revision $rev"
		exit 0
	fi
	sleep 5
done
