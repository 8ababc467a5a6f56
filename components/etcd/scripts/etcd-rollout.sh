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
#      the new template may be what it lacked;
#   2. a Ready member only while every member is Ready, the highest ordinal
#      first, one at a time, each back Ready before the next.
# Members that stay not Ready for $WAIT seconds stop the rollout: the Job
# fails, and with it the up, the members still on the previous template
# serving on. The next up runs it again (the Job is replaced while it is
# not complete) and finishes once that member is back.
#
# Environment: NAMESPACE, STATEFULSET, REPLICAS (etcd.replicas), WAIT,
# JOIN_IMAGE (named in the error when the image has no kubectl).
# Needs sh, sleep and kubectl (the join image has them, hack/backup-image),
# and get/delete on the members' pods and get on the StatefulSet.
set -eu

log() { echo "etcd-rollout: $*" >&2; }

command -v kubectl >/dev/null 2>&1 || {
	log "no kubectl in etcd.joinImage ($JOIN_IMAGE): build it from hack/backup-image, which adds Kubernetes' kubectl"
	exit 1
}

k() { kubectl --namespace="$NAMESPACE" --request-timeout=20s "$@"; }

# The revision the StatefulSet made of its current template, once its
# controller has seen the template (observedGeneration).
tries=0
while :; do
	if s=$(k get statefulset "$STATEFULSET" -o 'jsonpath={.metadata.generation}|{.status.observedGeneration}|{.status.updateRevision}' 2>/dev/null); then
		generation=${s%%|*}
		rest=${s#*|}
		observed=${rest%%|*}
		rev=${rest#*|}
		if [ -n "$rev" ] && [ "$generation" = "$observed" ]; then break; fi
	fi
	tries=$((tries + 1))
	[ "$tries" -lt 60 ] || { log "StatefulSet $STATEFULSET: its controller has not taken the new template in 120 s"; exit 1; }
	sleep 2
done
log "rolling $REPLICAS member(s) onto revision $rev"

members=""
i=0
while [ "$i" -lt "$REPLICAS" ]; do
	members="$members $STATEFULSET-$i"
	i=$((i + 1))
done

# state P sets found (yes/""), revision, ready (True/…), gone (its
# deletionTimestamp) for pod P. Asked one pod at a time: one name comes
# back as the object, several as a list.
state() {
	found=""
	revision=""
	ready=""
	gone=""
	s=$(k get pod "$1" --ignore-not-found -o 'jsonpath={.metadata.name}|{.metadata.labels.controller-revision-hash}|{.status.conditions[?(@.type=="Ready")].status}|{.metadata.deletionTimestamp}') || return 1
	[ -n "$s" ] || return 0
	found=yes
	s=${s#*|}
	revision=${s%%|*}
	s=${s#*|}
	ready=${s%%|*}
	gone=${s#*|}
}

waited=0
was_down=""
while :; do
	# Highest ordinal first in each list.
	stale_down=""
	stale_up=""
	down=""
	asked=yes
	for p in $members; do
		state "$p" || { asked=""; break; }
		if [ -z "$found" ] || [ -n "$gone" ] || [ "$ready" != True ]; then
			down="$p${down:+ $down}"
		fi
		if [ -n "$found" ] && [ -z "$gone" ] && [ "$revision" != "$rev" ]; then
			if [ "$ready" = True ]; then stale_up="$p${stale_up:+ $stale_up}"; else stale_down="$p${stale_down:+ $stale_down}"; fi
		fi
	done
	if [ -z "$asked" ]; then
		: # the API did not answer: ask again
	elif [ -n "$stale_down" ]; then
		set -- $stale_down
		log "$1 is not Ready and on the previous template: restarting it first (it costs the cluster nothing)"
		k delete pod "$1" --wait=false
		waited=0
	elif [ -n "$down" ]; then
		# Progress (a member back, a new one joined) restarts the clock.
		[ "$down" = "$was_down" ] || waited=0
		was_down=$down
		if [ "$waited" -ge "$WAIT" ]; then
			log "not Ready for ${WAIT} s: $down"
			if [ -n "$stale_up" ]; then
				log "not restarting $stale_up (still on the previous template and serving): with a member down, restarting one more would cost etcd its fault tolerance or its quorum. The next up finishes the rollout once every member is Ready (docs/runbook.md \"Rolling etcd onto a new pod template\")."
			else
				log "every member is on the new template; it does not become Ready (kubectl -n $NAMESPACE describe pod / logs)."
			fi
			exit 1
		fi
		waited=$((waited + 5))
	elif [ -n "$stale_up" ]; then
		set -- $stale_up
		log "every member Ready: restarting $1 onto the new template"
		k delete pod "$1" --wait=false
		waited=0
	else
		log "OK: all $REPLICAS member(s) Ready on revision $rev"
		exit 0
	fi
	sleep 5
done
