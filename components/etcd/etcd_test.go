package etcd

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

const (
	stsType = "kubernetes:apps/v1:StatefulSet"
	pvcType = "kubernetes:core/v1:PersistentVolumeClaim"
	pdbType = "kubernetes:policy/v1:PodDisruptionBudget"
)

func baseArgs() Args {
	return Args{Namespace: "kcp", Replicas: 1, StorageClass: "standard", StorageSize: "20Gi", ServerSecret: "etcd-server", PeerSecret: "etcd-peer",
		Resources: workload.Resources{Requests: workload.ResourceList{CPU: "1", Memory: "2Gi", EphemeralStorage: "128Mi"}, Limits: workload.ResourceList{CPU: "2", Memory: "4Gi", EphemeralStorage: "512Mi"}}}
}

func run(t *testing.T, a Args) *mocktest.Recorder {
	t.Helper()
	return mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		_, err := NewEtcd(ctx, "etcd", a)
		return err
	})
}

func TestEtcdPerEnvironment(t *testing.T) {
	prod := baseArgs()
	prod.Replicas, prod.StorageClass, prod.StorageSize, prod.Protect = 3, "fast-ssd", "100Gi", true
	prod.Spread = workload.Spread{Mode: workload.SpreadZone, Zones: []string{"a", "b", "c"}}
	tests := []struct {
		name      string
		args      Args
		members   int
		class     string
		size      string
		zoneHard  bool
		protected bool
	}{
		{"dev", baseArgs(), 1, "standard", "20Gi", false, false},
		{"prod", prod, 3, "fast-ssd", "100Gi", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := run(t, tt.args)
			sts := rec.Object(t, stsType, Name)
			if got := mocktest.Decode[appsv1.StatefulSet](t, sts).Spec.Replicas; got == nil || *got != int32(tt.members) {
				t.Errorf("replicas = %v, want %d", got, tt.members)
			}
			claims := rec.OfType(pvcType)
			if len(claims) != tt.members {
				t.Fatalf("%d claims, want one per member", len(claims))
			}
			names := map[string]bool{}
			for _, c := range claims {
				pvc := mocktest.Decode[corev1.PersistentVolumeClaim](t, c.Input())
				names[pvc.Name] = true
				size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
				if class := pvc.Spec.StorageClassName; class == nil || *class != tt.class || size.Cmp(resource.MustParse(tt.size)) != 0 {
					t.Errorf("claim %s: %+v", pvc.Name, pvc.Spec)
				}
				if !reflect.DeepEqual(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
					t.Errorf("access modes %v", pvc.Spec.AccessModes)
				}
				// Retained, not protected: lowering etcd.replicas must be able
				// to drop a removed member's claim from the stack (the volume stays).
				if c.Protect || c.RetainOnDelete != tt.protected {
					t.Errorf("claim protect=%v retain=%v, want retained=%v and never protected", c.Protect, c.RetainOnDelete, tt.protected)
				}
				// Not awaited: the provider's await of an updated bound claim
				// on a WaitForFirstConsumer class never ends (workload.ClaimMeta).
				if pvc.Annotations[workload.SkipAwait] != "true" {
					t.Errorf("claim %s annotations %v: an update of it (a resize) would hang the up", pvc.Name, pvc.Annotations)
				}
			}
			for _, m := range (Cluster{Name: Name, Namespace: "kcp"}).MemberNames(tt.members) {
				if !names["data-"+m] {
					t.Errorf("no claim data-%s: the StatefulSet would create its own, outside Pulumi (have %v)", m, names)
				}
			}
			stsRes := rec.Named(t, stsType, "etcd")
			if stsRes.Protect != tt.protected {
				t.Errorf("StatefulSet protect = %v", stsRes.Protect)
			}
			if !slices.Contains(stsRes.IgnoreChanges, "spec.volumeClaimTemplates") {
				t.Error("a size change would replace the StatefulSet (volumeClaimTemplates is immutable)")
			}
			if mocktest.Dig(sts, "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted") != "Retain" ||
				mocktest.Dig(sts, "spec", "persistentVolumeClaimRetentionPolicy", "whenScaled") != "Retain" {
				t.Error("claims are not retained when the StatefulSet is deleted or scaled")
			}
			pod := mocktest.Dig(sts, "spec", "template", "spec")
			required := mocktest.Dig(pod, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "topologyKey")
			if (required == workload.ZoneKey) != tt.zoneHard {
				t.Errorf("required anti-affinity topology = %v, want zone=%v", required, tt.zoneHard)
			}
			if tt.zoneHard {
				if got := mocktest.Dig(pod, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", 0, "matchExpressions", 0, "values"); !reflect.DeepEqual(got, []any{"a", "b", "c"}) {
					t.Errorf("node affinity zones = %v, want the zone list", got)
				}
				if mocktest.Dig(pod, "topologySpreadConstraints", 0, "whenUnsatisfiable") != "DoNotSchedule" {
					t.Error("zone spread is not enforced")
				}
			}
			c := mocktest.Dig(pod, "containers", 0)
			args := strings.Join(mocktest.Strings(mocktest.Dig(c, "args")), " ")
			for _, want := range []string{"--client-cert-auth", "--peer-client-cert-auth", "--trusted-ca-file=/etc/etcd/tls/server/ca.crt",
				"--quota-backend-bytes=8589934592", "--auto-compaction-mode=periodic", "--listen-metrics-urls=http://0.0.0.0:8080"} {
				if !strings.Contains(args, want) {
					t.Errorf("etcd args lack %s", want)
				}
			}
			// The initial cluster comes from the join ConfigMap, read when a
			// pod starts (TestTemplateIgnoresReplicas).
			script := rec.Object(t, "kubernetes:core/v1:ConfigMap", "etcd-join")
			if !strings.Contains(args, "--initial-cluster=$(INITIAL_CLUSTER)") || !reflect.DeepEqual(mocktest.Dig(c, "env", 1),
				map[string]any{"name": "INITIAL_CLUSTER", "valueFrom": map[string]any{"configMapKeyRef": map[string]any{"name": "etcd-join", "key": "initial-cluster"}}}) {
				t.Errorf("etcd's --initial-cluster does not read the join ConfigMap: %v %v", args, mocktest.Dig(c, "env"))
			}
			initial, _ := mocktest.Dig(script, "data", "initial-cluster").(string)
			if n := strings.Count(initial, "=https://etcd-"); n != tt.members || mocktest.Dig(script, "data", "replicas") != strconv.Itoa(tt.members) {
				t.Errorf("the join ConfigMap's initial cluster %q names %d members, want %d", initial, n, tt.members)
			}
			if mocktest.Dig(c, "livenessProbe", "httpGet", "path") != "/livez" || mocktest.Dig(c, "readinessProbe", "httpGet", "path") != "/readyz" {
				t.Error("probes are not etcd's /livez and /readyz")
			}
			if mocktest.Dig(c, "image") != DefaultImage+":"+DefaultVersion {
				t.Errorf("image %v not pinned", mocktest.Dig(c, "image"))
			}
			if mocktest.Dig(pod, "automountServiceAccountToken") != false || mocktest.Dig(c, "securityContext", "readOnlyRootFilesystem") != true {
				t.Error("etcd pod is not hardened")
			}
			// A member of a multi-member cluster rejoins by itself: the join
			// script runs first, with etcd's own arguments, volume and
			// certificates — also with one member, whose template must not
			// change when a second and third are added.
			inits := mocktest.List(mocktest.Dig(pod, "initContainers"))
			{
				if len(inits) != 1 {
					t.Fatalf("init containers = %v, want the join script", inits)
				}
				join := inits[0]
				if got := mocktest.Strings(mocktest.Dig(join, "args")); !reflect.DeepEqual(got, mocktest.Strings(mocktest.Dig(c, "args"))) {
					t.Errorf("the join script gets %v, not etcd's own arguments", got)
				}
				if mocktest.Dig(join, "image") != DefaultJoinImage || !strings.HasSuffix(DefaultJoinImage, ":"+DefaultVersion+"-2") {
					t.Errorf("join image %v, want %s (the pinned etcd's tools)", mocktest.Dig(join, "image"), DefaultJoinImage)
				}
				mounts := map[string]bool{}
				for _, m := range mocktest.List(mocktest.Dig(join, "volumeMounts")) {
					mounts[mocktest.Dig(m, "mountPath").(string)] = true
				}
				for _, want := range []string{"/var/lib/etcd", "/etc/etcd/tls/server", "/etc/etcd/tls/peer", "/scripts"} {
					if !mounts[want] {
						t.Errorf("the join container does not mount %s (%v)", want, mounts)
					}
				}
				if got := mocktest.Dig(script, "data", "etcd-join.sh"); got != joinScript {
					t.Errorf("ConfigMap etcd-join holds %.80v, not scripts/etcd-join.sh", got)
				}
			}
			pdb := rec.Object(t, pdbType, Name)
			if mocktest.Dig(pdb, "spec", "maxUnavailable") != float64(1) {
				t.Errorf("PDB = %v", pdb["spec"])
			}
		})
	}
}

// TestTemplateIgnoresReplicas: the members' pod template is the same for
// every etcd.replicas, so changing the count restarts no running member
// (a shrink to one restarted the member that stays — kcp's writes stalled
// ≈30 s on the node — and every raise rolled every member). Only the
// StatefulSet's replicas, the join ConfigMap and the membership Job differ.
func TestTemplateIgnoresReplicas(t *testing.T) {
	var first any
	for _, n := range []int{1, 3, 5, 7} {
		a := baseArgs()
		a.Replicas = n
		rec := run(t, a)
		tmpl := mocktest.Dig(rec.Object(t, stsType, Name), "spec", "template")
		if first == nil {
			first = tmpl
			continue
		}
		if !reflect.DeepEqual(tmpl, first) {
			t.Errorf("the pod template with %d members differs from the one with 1:\n%v\n%v", n, tmpl, first)
		}
	}
}

func TestValidate(t *testing.T) {
	fieldtest.Table(t, baseArgs, func(a Args) field.ErrorList { return a.WithDefaults().Validate(field.NewPath("etcd")) }, []fieldtest.Case[Args]{
		{"even members", func(a *Args) { a.Replicas = 2 }, "etcd.replicas", "an odd number from 1 to 7"},
		{"etcd 3.4", func(a *Args) { a.Version = "v3.4.30" }, "etcd.version", "v3.5.x release"},
		{"short version", func(a *Args) { a.Version = "v3.5" }, "etcd.version", "v3.5.x release"},
		{"tagged repository", func(a *Args) { a.Image = "quay.io/coreos/etcd:v3.5.35" }, "etcd.image", "without tag or digest"},
		{"decimal size", func(a *Args) { a.StorageSize = "100G" }, "etcd.storageSize", `"G" are not accepted`},
		{"size not whole Gi", func(a *Args) { a.StorageSize = "1500Mi" }, "etcd.storageSize", "whole number of Gi"},
		{"quota above etcd's maximum", func(a *Args) { a.QuotaBackendBytes = "21Gi" }, "etcd.quotaBackendBytes", "at most 8Gi"},
		{"quota fills the volume", func(a *Args) { a.StorageSize = "8Gi" }, "etcd.quotaBackendBytes", "less than storageSize (8Gi)"},
		{"request above limit", func(a *Args) { a.Resources.Requests.Memory = "8Gi" }, "etcd.resources.requests.memory", "at most limits.memory (4Gi)"},
		{"memory in decimal units", func(a *Args) { a.Resources.Limits.Memory = "4GB" }, "etcd.resources.limits.memory", `"GB" and "G" are not accepted`},
		{"no certificates", func(a *Args) { a.PeerSecret = "" }, "etcd.peerSecret", "Required value"},
		{"unknown spreading", func(a *Args) { a.Spread.Mode = "rack" }, "etcd.antiAffinity", `supported values: "none", "hostname", "zone"`},
		{"too few zones", func(a *Args) {
			a.Replicas = 3
			a.Spread = workload.Spread{Mode: workload.SpreadZone, Zones: []string{"a", "b"}}
		}, "etcd.antiAffinity", "at least 3 entries in zones"},
	})
}

// A size in Ti renders in Gi, so switching 1Ti to 1024Gi (or back) is no
// change to the claims.
func TestVolumeSizeInGi(t *testing.T) {
	a := baseArgs()
	a.StorageSize = "1Ti"
	claims := run(t, a.WithDefaults()).OfType(pvcType)
	if len(claims) != 1 {
		t.Fatalf("%d claims, want 1", len(claims))
	}
	// The exact spelling matters (a quantity type would read both as 1Ti).
	if got := mocktest.Dig(claims[0].Input(), "spec", "resources", "requests", "storage"); got != "1024Gi" {
		t.Errorf("claim size = %v, want 1024Gi", got)
	}
}

// TestTwoClusters: a second etcd cluster (another shard's) in the same
// namespace gets its own StatefulSet, Services, claims, members and policy,
// and the default cluster keeps every name it had (renaming a StatefulSet
// or a claim would replace stateful objects).
func TestTwoClusters(t *testing.T) {
	second := baseArgs()
	second.Name = "etcd-shard-1"
	rec := mocktest.MustRun(t, func(ctx *pulumi.Context) error {
		if _, err := NewEtcd(ctx, "etcd", baseArgs()); err != nil {
			return err
		}
		_, err := NewEtcd(ctx, "etcd-shard-1", second)
		return err
	})
	for _, tc := range []struct{ typ, name string }{
		{stsType, "etcd"}, {stsType, "etcd-shard-1"},
		{"kubernetes:core/v1:Service", "etcd"}, {"kubernetes:core/v1:Service", "etcd-headless"},
		{"kubernetes:core/v1:Service", "etcd-shard-1"}, {"kubernetes:core/v1:Service", "etcd-shard-1-headless"},
		{pvcType, "data-etcd-0"}, {pvcType, "data-etcd-shard-1-0"},
		{pdbType, "etcd"}, {pdbType, "etcd-shard-1"},
	} {
		rec.Object(t, tc.typ, tc.name)
	}
	sts := mocktest.Decode[appsv1.StatefulSet](t, rec.Object(t, stsType, "etcd-shard-1"))
	if sts.Spec.ServiceName != "etcd-shard-1-headless" || sts.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "etcd-shard-1" {
		t.Errorf("second StatefulSet: service %q, selector %v", sts.Spec.ServiceName, sts.Spec.Selector.MatchLabels)
	}
	if got := mocktest.Dig(rec.Object(t, "kubernetes:core/v1:ConfigMap", "etcd-shard-1-join"), "data", "initial-cluster"); got != "etcd-shard-1-0=https://etcd-shard-1-0.etcd-shard-1-headless.kcp.svc:2380" {
		t.Errorf("second cluster's members: %v", got)
	}
	if env := sts.Spec.Template.Spec.Containers[0].Env; len(env) < 2 || env[1].ValueFrom == nil || env[1].ValueFrom.ConfigMapKeyRef == nil || env[1].ValueFrom.ConfigMapKeyRef.Name != "etcd-shard-1-join" {
		t.Errorf("second cluster's members read the initial cluster from %+v, want its own join ConfigMap", env)
	}
	// Both are scraped as job etcd (the alerts' selector), each under its
	// own cluster label.
	for _, cluster := range []string{"etcd", "etcd-shard-1"} {
		svc := mocktest.Decode[corev1.Service](t, rec.Object(t, "kubernetes:core/v1:Service", cluster))
		if svc.Labels["app.kubernetes.io/name"] != "etcd" || svc.Labels[ClusterLabel] != cluster || svc.Spec.Selector["app.kubernetes.io/name"] != cluster {
			t.Errorf("Service %s: labels %v, selector %v", cluster, svc.Labels, svc.Spec.Selector)
		}
	}
}

// TestMembersReachEachOther: a member's join init container lists and
// changes the membership through the other members' client port
// (scripts/etcd-join.sh), so the cluster's policy lets members reach each
// other there as well as on the peer port — also with one member, so that
// the new members of a raised count need no policy change first. A CNI
// that enforces policies refused it before, and a member whose data was
// lost then crash-looped instead of rejoining.
func TestMembersReachEachOther(t *testing.T) {
	for _, tt := range []struct {
		replicas int
		want     []int32
	}{
		{1, []int32{PeerPort, ClientPort}},
		{3, []int32{PeerPort, ClientPort}},
	} {
		t.Run(strconv.Itoa(tt.replicas), func(t *testing.T) {
			a := baseArgs()
			a.Replicas = tt.replicas
			np := mocktest.Decode[networkingv1.NetworkPolicy](t, run(t, a).Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-"+Name))
			members := func(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) []int32 {
				if len(peers) != 1 || peers[0].PodSelector == nil || !reflect.DeepEqual(peers[0].PodSelector.MatchLabels, workload.Labels(Name)) {
					return nil
				}
				var got []int32
				for _, p := range ports {
					got = append(got, p.Port.IntVal)
				}
				return got
			}
			var in, out []int32
			for _, r := range np.Spec.Ingress {
				in = append(in, members(r.From, r.Ports)...)
			}
			for _, r := range np.Spec.Egress {
				out = append(out, members(r.To, r.Ports)...)
			}
			if !slices.Equal(in, tt.want) || !slices.Equal(out, tt.want) {
				t.Errorf("members reach each other on ingress %v, egress %v; want %v both ways", in, out, tt.want)
			}
		})
	}
}

// TestMembershipJobComesFirst: the StatefulSet waits for the membership
// Job, whose environment names the members etcd.replicas keeps (so a
// change of the count replaces and re-runs it) and every member the
// cluster can have; the Job reaches the members' client port and nothing
// else, and they accept it there.
func TestMembershipJobComesFirst(t *testing.T) {
	const jobType, npType = "kubernetes:batch/v1:Job", "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	for _, replicas := range []int{1, 3} {
		t.Run(strconv.Itoa(replicas), func(t *testing.T) {
			a := baseArgs()
			a.Replicas = replicas
			rec := run(t, a)
			job := rec.Named(t, jobType, "etcd-members")
			if !slices.ContainsFunc(rec.Named(t, stsType, "etcd").DependsOn, func(u string) bool { return strings.HasSuffix(u, jobType+"::etcd-members") }) {
				t.Error("the StatefulSet does not wait for the membership Job: a shrink would delete members' pods while the cluster still counts them")
			}
			if !slices.ContainsFunc(job.DependsOn, func(u string) bool { return strings.HasSuffix(u, npType+"::etcd-members-netpol") }) {
				t.Errorf("the membership Job does not wait for its NetworkPolicy: denied etcd, it takes the cluster for absent and removes no one; depends on %v", job.DependsOn)
			}
			// The count the join script's guard reads is the new one
			// before the Job removes anyone, with one member too.
			cm := rec.Named(t, "kubernetes:core/v1:ConfigMap", "etcd-join-script")
			if mocktest.Dig(cm.Input(), "data", joinReplicasKey) != strconv.Itoa(replicas) ||
				!slices.ContainsFunc(job.DependsOn, func(u string) bool { return strings.HasSuffix(u, "kubernetes:core/v1:ConfigMap::etcd-join-script") }) {
				t.Errorf("join ConfigMap %v, Job depends on %v: want replicas=%d there first", cm.Input()["data"], job.DependsOn, replicas)
			}
			spec := mocktest.Decode[batchv1.Job](t, job.Input()).Spec.Template.Spec
			c := spec.Containers[0]
			if !reflect.DeepEqual(c.Command, []string{"sh", "-c", membersScript, "etcd-members"}) || c.Image != DefaultJoinImage {
				t.Errorf("the Job runs %.60v on %s, not scripts/etcd-members.sh on the join image", c.Command, c.Image)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			cl := a.WithDefaults().Cluster()
			var keep []string
			for _, m := range cl.MemberNames(replicas) {
				keep = append(keep, cl.MemberURL(m, PeerPort))
			}
			if env["KEEP_PEERS"] != strings.Join(keep, ",") {
				t.Errorf("KEEP_PEERS = %q, want the %d kept members' peer URLs", env["KEEP_PEERS"], replicas)
			}
			if got := strings.Split(env["ETCD_ENDPOINTS"], ","); len(got) != MaxReplicas || got[MaxReplicas-1] != cl.MemberURL(Name+"-6", ClientPort) {
				t.Errorf("ETCD_ENDPOINTS = %v, want every member the cluster can have", got)
			}
			if job.Protect || spec.RestartPolicy != corev1.RestartPolicyNever || spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("Job: protect=%v restart=%s automount=%v", job.Protect, spec.RestartPolicy, spec.AutomountServiceAccountToken)
			}
			jobPods := workload.Labels(Name + "-members")
			own := mocktest.Decode[networkingv1.NetworkPolicy](t, rec.Object(t, npType, "allow-"+Name+"-members"))
			if !reflect.DeepEqual(own.Spec.PodSelector.MatchLabels, jobPods) || len(own.Spec.Egress) != 1 ||
				!reflect.DeepEqual(own.Spec.Egress[0].To[0].PodSelector.MatchLabels, workload.Labels(Name)) || own.Spec.Egress[0].Ports[0].Port.IntVal != ClientPort {
				t.Errorf("the Job's policy does not allow exactly the members' client port: %+v", own.Spec)
			}
			members := mocktest.Decode[networkingv1.NetworkPolicy](t, rec.Object(t, npType, "allow-"+Name))
			if !slices.ContainsFunc(members.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool {
				return r.From[0].PodSelector != nil && reflect.DeepEqual(r.From[0].PodSelector.MatchLabels, jobPods) && r.Ports[0].Port.IntVal == ClientPort
			}) {
				t.Error("the members do not accept the Job on their client port")
			}
		})
	}
}
