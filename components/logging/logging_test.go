package logging

import (
	"bufio"
	"regexp"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kcp-tmc/kcp-tmc/internal/test/fieldtest"
	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// section is one [SECTION] of fluent-bit's classic configuration format.
type section struct {
	name string
	keys map[string]string
}

// parse reads the classic format strictly: section headers, then
// four-space-indented "Key Value" lines; anything else is an error.
func parse(t *testing.T, conf string) []section {
	t.Helper()
	var out []section
	header := regexp.MustCompile(`^\[([A-Z]+)\]$`)
	entry := regexp.MustCompile(`^    ([A-Za-z0-9_.-]+)\s+(\S.*)$`)
	sc := bufio.NewScanner(strings.NewReader(conf))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
		case header.MatchString(line):
			out = append(out, section{header.FindStringSubmatch(line)[1], map[string]string{}})
		case entry.MatchString(line) && len(out) > 0:
			m := entry.FindStringSubmatch(line)
			if _, dup := out[len(out)-1].keys[m[1]]; dup {
				t.Errorf("line %d: %s repeated in [%s]", n, m[1], out[len(out)-1].name)
			}
			out[len(out)-1].keys[m[1]] = m[2]
		default:
			t.Errorf("line %d is not fluent-bit classic config: %q", n, line)
		}
	}
	return out
}

func find(t *testing.T, ss []section, name, plugin string) map[string]string {
	t.Helper()
	for _, s := range ss {
		if s.name == name && (plugin == "" || s.keys["Name"] == plugin) {
			return s.keys
		}
	}
	t.Fatalf("no [%s] %s", name, plugin)
	return nil
}

func TestConfigParses(t *testing.T) {
	a := Args{ElasticsearchHost: "logs.example.com", Username: "kcp", Password: pulumi.String("x"), TLS: true}.WithDefaults()
	conf := parse(t, Config(a))
	tail := find(t, conf, "INPUT", "tail")
	if tail["Path"] != "/var/log/containers/*.log" || !strings.Contains(tail["multiline.parser"], "cri") || tail["DB"] == "" {
		t.Errorf("tail input = %v", tail)
	}
	if k := find(t, conf, "FILTER", "kubernetes"); k["Merge_Log"] != "On" {
		t.Errorf("JSON logs are not parsed into fields: %v", k)
	}
	es := find(t, conf, "OUTPUT", "es")
	want := map[string]string{"Index": "kcp-logs", "Host": "${ES_HOST}", "Port": "${ES_PORT}", "HTTP_User": "${ES_USER}", "HTTP_Passwd": "${ES_PASSWORD}", "tls": "On"}
	for k, v := range want {
		if es[k] != v {
			t.Errorf("es output %s = %q, want %q", k, es[k], v)
		}
	}
	if find(t, conf, "SERVICE", "")["Health_Check"] != "On" {
		t.Error("no health endpoint for the probes")
	}
	noAuth := parse(t, Config(Args{ElasticsearchHost: "logs"}.WithDefaults()))
	if _, ok := find(t, noAuth, "OUTPUT", "es")["HTTP_Passwd"]; ok {
		t.Error("password configured without credentials")
	}
}

func TestDaemonSet(t *testing.T) {
	rec, err := mocktest.Run(t, "test", func(ctx *pulumi.Context) error {
		_, err := NewLogging(ctx, "logging", Args{ElasticsearchHost: "logs.example.com", Username: "kcp",
			Password: pulumi.ToSecret(pulumi.String("hunter2")).(pulumi.StringOutput)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ds := rec.Object(t, "kubernetes:apps/v1:DaemonSet", Name)
	c := mocktest.Dig(ds, "spec", "template", "spec", "containers", 0)
	if mocktest.Dig(c, "securityContext", "allowPrivilegeEscalation") != false || mocktest.Dig(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Errorf("container security = %v", mocktest.Dig(c, "securityContext"))
	}
	if mocktest.Dig(ds, "spec", "template", "spec", "volumes", 0, "hostPath", "path") != "/var/log" || mocktest.Dig(c, "volumeMounts", 0, "readOnly") != true {
		t.Error("/var/log is not mounted read-only")
	}
	sec := rec.Named(t, "kubernetes:core/v1:Secret", "logging-credentials")
	if sd := sec.Inputs["stringData"]; !sd.IsSecret() && !sd.ObjectValue()["password"].IsSecret() {
		t.Error("the Elasticsearch password is not a Pulumi secret")
	}
	ns := rec.Object(t, "kubernetes:core/v1:Namespace", Namespace)
	if mocktest.Dig(ns, "metadata", "labels", "pod-security.kubernetes.io/enforce") != "privileged" ||
		mocktest.Dig(ns, "metadata", "labels", "pod-security.kubernetes.io/audit") != "restricted" ||
		mocktest.Dig(ns, "metadata", "annotations", "kcp-tmc.io/policy-exception") == nil {
		t.Errorf("logging namespace = %v", ns["metadata"])
	}
	rec.Object(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "default-deny")
	role := rec.Object(t, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "kcp-tmc-fluent-bit")
	if got := mocktest.Dig(role, "rules", 0, "verbs"); len(got.([]any)) != 3 {
		t.Errorf("ClusterRole verbs = %v", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		a           Args
		field, want string
	}{
		{Args{ElasticsearchHost: "https://logs"}, "logging.elasticsearchHost", "without scheme"},
		{Args{}, "logging.elasticsearchHost", "Required value"},
		{Args{ElasticsearchHost: "logs", ElasticsearchPort: 70000}, "logging.elasticsearchPort", "70000: 1 to 65535"},
		{Args{ElasticsearchHost: "logs", Index: "KCP"}, "logging.index", `"KCP": a lowercase`},
		{Args{ElasticsearchHost: "logs", Index: "_kcp"}, "logging.index", "a lowercase Elasticsearch index name"},
		{Args{ElasticsearchHost: "logs", Username: "u"}, "logging.password", "Required value"},
		{Args{ElasticsearchHost: "logs", Image: "fluent-bit:latest"}, "logging.image", "a pinned image"},
	}
	if errs := (Args{ElasticsearchHost: "10.0.0.5"}).WithDefaults().Validate(field.NewPath("logging")); len(errs) > 0 {
		t.Fatalf("valid args refused: %v", errs)
	}
	for _, tt := range tests {
		fieldtest.Expect(t, tt.a.WithDefaults().Validate(field.NewPath("logging")), tt.field, tt.want)
	}
}
