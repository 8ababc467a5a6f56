package stacks

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/internal/test/mocktest"
)

// source is a ConfigSource over plain maps, keyed without the namespace.
type source struct {
	values  map[string]string
	secrets map[string]bool
}

func (s source) GetConfig(key string) (string, bool) {
	v, ok := s.values[strings.TrimPrefix(key, Namespace+":")]
	return v, ok
}

func (s source) IsConfigSecret(key string) bool {
	return s.secrets[strings.TrimPrefix(key, Namespace+":")]
}

// ConfigKeys lists the keys set, as a stack's config does: every table test
// below also proves that the keys it uses are known.
func (s source) ConfigKeys() []string {
	keys := make([]string, 0, len(s.values))
	for k := range s.values {
		if !strings.Contains(k, ":") {
			k = Namespace + ":" + k
		}
		keys = append(keys, k)
	}
	return keys
}

// env builds a source for an environment with overrides; a value "<delete>"
// removes the key.
func env(name string, kv ...string) source {
	s := source{values: map[string]string{"environment": name}, secrets: map[string]bool{}}
	if name == "prod" {
		s.values["kubeconfig"] = "apiVersion: v1\nkind: Config\n"
		s.secrets["kubeconfig"] = true
	}
	if name == "prod" || name == "staging" {
		s.values["backup"] = testIRSA
	}
	if name == "prod" {
		s.values["slackWebhookUrl"] = "https://hooks.slack.com/services/T/B/SECRET-KEY-NOT-ECHOED"
		s.secrets["slackWebhookUrl"] = true
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<delete>" {
			delete(s.values, kv[i])
			continue
		}
		s.values[kv[i]] = kv[i+1]
	}
	return s
}

// testIRSA is the backup identity provider staging and prod need.
const testIRSA = `{"oidcProviderArn":"arn:aws:iam::123456789012:oidc-provider/oidc.example/id/T","oidcIssuer":"oidc.example/id/T"}`

// secretEnv is env with the last key set as a secret.
func secretEnv(name string, kv ...string) source {
	s := env(name, kv...)
	s.secrets[kv[len(kv)-2]] = true
	return s
}

func TestLoadRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		src     source
		wantKey string // the key path the error must name
		wantVal string // the bad value the error must quote
	}{
		{"environment unset", env("dev", "environment", "<delete>"), "kcp-tmc:environment", "<unset>"},
		{"unknown environment", env("qa"), "kcp-tmc:environment", "qa"},
		{"unknown target mode", env("dev", "target", `{"mode":"helm"}`), "kcp-tmc:target.mode", "helm"},
		{"render dir escapes project", env("dev", "target", `{"mode":"render","renderDir":"../out"}`), "kcp-tmc:target.renderDir", "../out"},
		{"render dir empty", env("dev", "target", `{"mode":"render","renderDir":""}`), "kcp-tmc:target.renderDir", ""},
		{"unknown kcp side mode", env("dev", "target", `{"mode":"render","renderDir":"r","kcpSide":"later"}`), "kcp-tmc:target.kcpSide", "later"},
		{"kcp server over http", env("dev", "target", `{"mode":"render","renderDir":"r","kcpServer":"http://10.0.0.5"}`), "kcp-tmc:target.kcpServer", "http://10.0.0.5"},
		{"kcp server with a path", env("dev", "target", `{"mode":"render","renderDir":"r","kcpServer":"https://10.0.0.5/clusters/root"}`), "kcp-tmc:target.kcpServer", "https://10.0.0.5/clusters/root"},
		{"kubeconfig mode without credentials", env("staging"), "kcp-tmc:kubeconfig", "<unset>"},
		{"kubeconfig in plaintext", env("staging", "kubeconfig", "apiVersion: v1"), "kcp-tmc:kubeconfig", "<plaintext>"},
		{"prod without kubeconfig secret", env("prod", "kubeconfig", "<delete>", "target", `{"mode":"kubeconfig","context":"prod"}`), "kcp-tmc:kubeconfig", "<unset>"},
		{"bad domain", env("dev", "domain", "kcp_example"), "kcp-tmc:domain", "kcp_example"},
		{"single-label domain", env("dev", "domain", "localhost"), "kcp-tmc:domain", "localhost"},
		{"uppercase domain", env("dev", "domain", "KCP.Example.com"), "kcp-tmc:domain", "KCP.Example.com"},
		{"bad namespace", env("dev", "namespace", "kcp_system"), "kcp-tmc:namespace", "kcp_system"},
		{"unpinned pod security", env("dev", "podSecurityVersion", "latest"), "kcp-tmc:podSecurityVersion", "latest"},
		{"kcp replicas zero", env("dev", "kcp", `{"replicas":0}`), "kcp-tmc:kcp.replicas", "0"},
		{"shard named root", env("dev", "kcp", `{"shards":[{"name":"root"}]}`), "kcp-tmc:kcp.shards[0].name", "root"},
		{"class name too long for its attributes class", env("prod", "storage", `{"modifyVolumes":true}`, "etcd", `{"storageClass":"`+strings.Repeat("a", 50)+`"}`),
			"kcp-tmc:etcd.storageClass", strings.Repeat("a", 50)},
		{"modifyVolumes on a class kcp-tmc does not make", env("dev", "storage", `{"modifyVolumes":true}`), "kcp-tmc:storage.modifyVolumes", "true"},
		{"unknown cache mode", env("dev", "kcp", `{"cache":{"mode":"external"}}`), "kcp-tmc:kcp.cache.mode", "external"},
		{"cache sizing without the separate mode", env("dev", "kcp", `{"cache":{"replicas":2}}`), "kcp-tmc:kcp.cache", "<set>"},
		{"one cache server in staging", env("staging", "kcp", `{"cache":{"mode":"separate","replicas":1}}`, "target", `{"mode":"kubeconfig","context":"s"}`), "kcp-tmc:kcp.cache.replicas", "1"},
		{"cache etcd in GB", env("dev", "kcp", `{"cache":{"mode":"separate","etcd":{"storageSize":"20GB"}}}`), "kcp-tmc:kcp.cache.etcd.storageSize", "20GB"},
		{"shards with ACME", env("dev", "kcp", `{"shards":[{"name":"s1"}]}`, "tls", `{"acme":{"email":"ops@example.com"}}`), "kcp-tmc:tls.acme", "<set>"},
		{"shard named like the front-proxy", env("dev", "kcp", `{"shards":[{"name":"front-proxy"}]}`), "kcp-tmc:kcp.shards[0].name", "front-proxy"},
		{"cluster on an unknown shard", env("dev", "clusters", `[{"name":"a","resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}],"shard":"shard-9"}]`), "kcp-tmc:clusters[0].shard", "shard-9"},
		{"one workspace on two shards", env("dev", "kcp", `{"shards":[{"name":"s1"}]}`, "clusters", `[{"name":"a","resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}],"shard":"root"},{"name":"b","resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}],"shard":"s1"}]`), "kcp-tmc:clusters[1].shard", "s1"},
		{"agent on another shard with OIDC", env("dev", "kcp", `{"shards":[{"name":"s1"}],"oidc":{"issuerURL":"https://id.example.com","clientID":"kcp"}}`, "clusters", `[{"name":"a","resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}],"shard":"s1"}]`), "kcp-tmc:clusters[0].shard", "s1"},
		{"agent on kcp's choice of shard with OIDC", env("dev", "kcp", `{"shards":[{"name":"s1"}],"oidc":{"issuerURL":"https://id.example.com","clientID":"kcp"}}`, "clusters", `[{"name":"a","resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}]}]`), "kcp-tmc:clusters[0].shard", "<unset>"},
		{"shard named twice", env("dev", "kcp", `{"shards":[{"name":"a"},{"name":"a"}]}`), "kcp-tmc:kcp.shards[1].name", "a"},
		{"shard name not a label", env("dev", "kcp", `{"shards":[{"name":"Shard_1"}]}`), "kcp-tmc:kcp.shards[0].name", "Shard_1"},
		{"shard without replicas", env("dev", "kcp", `{"shards":[{"name":"s1","replicas":0}]}`), "kcp-tmc:kcp.shards[0].replicas", "0"},
		{"one shard replica in staging", env("staging", "kcp", `{"shards":[{"name":"s1","replicas":1}]}`, "target", `{"mode":"kubeconfig","context":"s"}`), "kcp-tmc:kcp.shards[0].replicas", "1"},
		{"shard etcd size in GB", env("dev", "kcp", `{"shards":[{"name":"s1","etcd":{"storageSize":"20GB"}}]}`), "kcp-tmc:kcp.shards[0].etcd.storageSize", "20GB"},
		{"shard etcd too big for dev", env("dev", "kcp", `{"shards":[{"name":"s1","etcd":{"storageSize":"500Gi"}}]}`), "kcp-tmc:kcp.shards[0].etcd.storageSize", "500Gi"},
		{"shard etcd class", env("dev", "kcp", `{"shards":[{"name":"s1","etcd":{"storageClass":"Fast_SSD"}}]}`), "kcp-tmc:kcp.shards[0].etcd.storageClass", "Fast_SSD"},
		// Found by review of the field-path refactor: each was refused before it and must stay so.
		{"ingress mode emptied", env("prod", "ingress", `{"mode":""}`), "kcp-tmc:ingress.mode", ""},
		{"etcd spreading emptied", env("staging", "etcd", `{"antiAffinity":""}`, "target", `{"mode":"kubeconfig","context":"s"}`), "kcp-tmc:etcd.antiAffinity", ""},
		{"ingress controllers zero", env("dev", "ingress", `{"controllerReplicas":0}`), "kcp-tmc:ingress.controllerReplicas", "0"},
		{"leaf lifetime zero", env("dev", "tls", `{"leafDuration":"0h"}`), "kcp-tmc:tls.leafDuration", "0h"},
		{"renewal in minutes, as typed", env("dev", "tls", `{"renewBefore":"90m"}`), "kcp-tmc:tls.renewBefore", "90m"},
		{"CPU in Gi", env("dev", "kcp", `{"resources":{"requests":{"cpu":"1Gi","memory":"1Gi"},"limits":{"cpu":"2Gi","memory":"2Gi"}}}`), "kcp-tmc:kcp.resources.limits.cpu", "2Gi"},
		{"CPU in kilocores", env("dev", "agentResources", `{"requests":{"cpu":"2k","memory":"1Gi"},"limits":{"cpu":"2k","memory":"1Gi"}}`), "kcp-tmc:agentResources.requests.cpu", "2k"},
		{"index with a newline", env("dev", "logging", `{"index":"kcp\nx"}`), "kcp-tmc:logging.index", "kcp\nx"},
		{"Prometheus namespace not a label", env("dev", "monitoring", `{"namespace":"Observability"}`), "kcp-tmc:monitoring.namespace", "Observability"},
		{"Prometheus in kcp's namespace", env("dev", "monitoring", `{"namespace":"kcp"}`), "kcp-tmc:monitoring.namespace", "kcp"},
		{"Prometheus in the log shipper's namespace", env("dev", "monitoring", `{"namespace":"logging"}`, "logging", `{"enabled":true,"elasticsearchHost":"logs"}`), "kcp-tmc:monitoring.namespace", "logging"},
		{"Prometheus namespace with monitoring off (the policies still name it)", env("dev", "monitoring", `{"enabled":false,"namespace":"prom/x"}`), "kcp-tmc:monitoring.namespace", "prom/x"},
		{"domain label over 63", env("dev", "domain", strings.Repeat("a", 64)+".example.com"), "kcp-tmc:domain", strings.Repeat("a", 64) + ".example.com"},
		{"kcp image without registry", env("dev", "kcp", `{"image":"kcp"}`), "kcp-tmc:kcp.image", "kcp"},
		{"ACME e-mail at a single label", env("dev", "tls", `{"acme":{"email":"admin@localhost"}}`), "kcp-tmc:tls.acme.email", "admin@localhost"},
		{"existing VPC without subnets, existing cluster", env("prod", "cloud", `{"existingVpc":{"id":"vpc-1"}}`), "kcp-tmc:cloud.existingVpc.privateSubnets[us-east-1a]", "<none>"},
		{"fractional scrape interval", env("dev", "monitoring", `{"interval":"0.5m"}`), "kcp-tmc:monitoring.interval", "0.5m"},
		{"kcp replicas as a word", env("dev", "kcp", `{"replicas":"three"}`), "kcp-tmc:kcp.replicas", "a string"},
		{"single kcp replica in prod", env("prod", "kcp", `{"replicas":1}`), "kcp-tmc:kcp.replicas", "1"},
		{"kcp image with tag", env("dev", "kcp", `{"image":"ghcr.io/kcp-dev/kcp:latest"}`), "kcp-tmc:kcp.image", "ghcr.io/kcp-dev/kcp:latest"},
		{"kcp version latest", env("dev", "kcp", `{"version":"latest"}`), "kcp-tmc:kcp.version", "latest"},
		{"kcp is not a map", env("dev", "kcp", `"big"`), "kcp-tmc:kcp", "a string"},
		{"unknown kcp key", env("dev", "kcp", `{"replica":3}`), "kcp-tmc:kcp.replica", "<set>"},
		{"even etcd members", env("staging", "etcd", `{"replicas":4}`, "target", `{"mode":"kubeconfig","context":"s"}`), "kcp-tmc:etcd.replicas", "4"},
		{"two etcd members", env("dev", "etcd", `{"replicas":2}`), "kcp-tmc:etcd.replicas", "2"},
		{"one etcd member in prod", env("prod", "etcd", `{"replicas":1,"storageSize":"100Gi"}`), "kcp-tmc:etcd.replicas", "1"},
		{"etcd replicas float", env("dev", "etcd", `{"replicas":1.5}`), "kcp-tmc:etcd.replicas", "a number 1.5"},
		{"size in Gb", env("prod", "etcd", `{"storageSize":"100Gb"}`), "kcp-tmc:etcd.storageSize", "100Gb"},
		{"size without unit", env("dev", "etcd", `{"storageSize":"20"}`), "kcp-tmc:etcd.storageSize", "20"},
		{"dev volume too big", env("dev", "etcd", `{"storageSize":"60Gi"}`), "kcp-tmc:etcd.storageSize", "60Gi"},
		{"prod volume too small", env("prod", "etcd", `{"storageSize":"50Gi"}`), "kcp-tmc:etcd.storageSize", "50Gi"},
		{"prod volume too big", env("prod", "etcd", `{"storageSize":"1Ti"}`), "kcp-tmc:etcd.storageSize", "1Ti"},
		{"bad storage class", env("dev", "etcd", `{"storageClass":"Fast SSD"}`), "kcp-tmc:etcd.storageClass", "Fast SSD"},
		{"unknown anti-affinity", env("dev", "etcd", `{"antiAffinity":"rack"}`), "kcp-tmc:etcd.antiAffinity", "rack"},
		{"prod without zone anti-affinity", env("prod", "etcd", `{"antiAffinity":"hostname"}`), "kcp-tmc:etcd.antiAffinity", "hostname"},
		{"fewer zones than replicas", env("prod", "zones", `["us-east-1a","us-east-1b"]`), "kcp-tmc:kcp.antiAffinity", "zone"},
		{"zones as a string", env("prod", "zones", `"us-east-1a"`), "kcp-tmc:zones", "a string"},
		{"duplicate zone", env("prod", "zones", `["us-east-1a","us-east-1a","us-east-1b"]`), "kcp-tmc:zones[1]", "us-east-1a"},
		{"bad zone name", env("prod", "zones", `["us-east-1a","us-east-1b","US East C"]`), "kcp-tmc:zones[2]", "US East C"},
		{"cpu with unit words", env("dev", "kcp", `{"resources":{"requests":{"cpu":"2 cores","memory":"1Gi"},"limits":{"cpu":"4","memory":"2Gi"}}}`), "kcp-tmc:kcp.resources.requests.cpu", "2 cores"},
		{"memory in GB", env("dev", "etcd", `{"resources":{"requests":{"cpu":"1","memory":"4GB"},"limits":{"cpu":"2","memory":"8Gi"}}}`), "kcp-tmc:etcd.resources.requests.memory", "4GB"},
		{"requests above limits", env("dev", "kcp", `{"resources":{"requests":{"cpu":"4","memory":"1Gi"},"limits":{"cpu":"2","memory":"2Gi"}}}`), "kcp-tmc:kcp.resources.requests.cpu", "4"},
		{"memory limit emptied", env("dev", "kcp", `{"resources":{"limits":{"memory":""}}}`), "kcp-tmc:kcp.resources.limits.memory", ""},
		{"cron with four fields", env("dev", "backup", `{"schedule":"0 2 * *"}`), "kcp-tmc:backup.schedule", "0 2 * *"},
		{"cron minute out of range", env("dev", "backup", `{"schedule":"61 2 * * *"}`), "kcp-tmc:backup.schedule", "61 2 * * *"},
		{"cron unknown descriptor", env("dev", "backup", `{"schedule":"@sometimes"}`), "kcp-tmc:backup.schedule", "@sometimes"},
		{"cron zero step", env("dev", "backup", `{"schedule":"*/0 * * * *"}`), "kcp-tmc:backup.schedule", "*/0 * * * *"},
		{"backups on a PVC in prod", env("prod", "backup", `{"target":"pvc","pvcSize":"100Gi"}`), "kcp-tmc:backup.target", "pvc"},
		{"IA transition too early", env("staging", "backup", `{"transitionDays":7}`), "kcp-tmc:backup.transitionDays", "7"},
		{"retention before transition on the dev PVC", env("dev", "backup", `{"retentionDays":10,"transitionDays":30}`), "kcp-tmc:backup.retentionDays", "10"},
		{"IRSA provider of the wrong kind", env("prod", "backup", `{"oidcProviderArn":"arn:aws:iam::1:role/x","oidcIssuer":"x"}`), "kcp-tmc:backup.oidcProviderArn", "arn:aws:iam::1:role/x"},
		{"bucket with capitals", env("dev", "backup", `{"target":"s3","bucket":"My_Backups","endpoint":"http://minio:9000"}`), "kcp-tmc:backup.bucket", "My_Backups"},
		{"endpoint without scheme", env("dev", "backup", `{"target":"s3","endpoint":"minio:9000"}`), "kcp-tmc:backup.endpoint", "minio:9000"},
		{"S3-compatible without its access key", env("dev", "backup", `{"target":"s3","endpoint":"http://minio:9000"}`), "kcp-tmc:backup.accessKeyId", "<unset>"},
		{"S3-compatible without the secret key", env("dev", "backup", `{"target":"s3","endpoint":"http://minio:9000","accessKeyId":"k"}`), "kcp-tmc:backupSecretAccessKey", "<unset>"},
		{"a static key for AWS S3", env("dev", "backup", `{"target":"s3","accessKeyId":"AKIAEXAMPLE"}`), "kcp-tmc:backup.accessKeyId", "AKIAEXAMPLE"},
		{"a secret key for AWS S3", secretEnv("dev", "backupSecretAccessKey", "SECRET-KEY"), "kcp-tmc:backupSecretAccessKey", "<secret>"},
		{"backup secret key in plaintext", env("dev", "backupSecretAccessKey", "SECRET-KEY"), "kcp-tmc:backupSecretAccessKey", "<plaintext>"},
		{"slack webhook in plaintext", env("dev", "slackWebhookUrl", "https://hooks.slack.com/services/SECRET-KEY"), "kcp-tmc:slackWebhookUrl", "<plaintext>"},
		{"prod without slack webhook", env("prod", "slackWebhookUrl", "<delete>"), "kcp-tmc:slackWebhookUrl", "<unset>"},
		{"slack webhook over http", secretEnv("dev", "slackWebhookUrl", "http://SECRET-KEY"), "kcp-tmc:slackWebhookUrl", "<secret>"},
		{"monitoring stack in render mode", env("dev", "monitoring", `{"installStack":true}`), "kcp-tmc:monitoring.installStack", "true"},
		{"scrape interval in hours", env("dev", "monitoring", `{"interval":"1h"}`), "kcp-tmc:monitoring.interval", "1h"},
		{"slack channel without #", secretEnv("dev", "monitoring", `{"slackChannel":"alerts"}`, "slackWebhookUrl", "https://hooks.slack.com/x"), "kcp-tmc:monitoring.slackChannel", "alerts"},
		{"monitoring off in prod", env("prod", "monitoring", `{"enabled":false}`), "kcp-tmc:monitoring.enabled", "false"},
		{"logs without a password", env("dev", "logging", `{"enabled":true,"elasticsearchHost":"logs","username":"kcp"}`), "kcp-tmc:elasticsearchPassword", "<unset>"},
		{"log host with scheme", env("dev", "logging", `{"enabled":true,"elasticsearchHost":"https://logs"}`), "kcp-tmc:logging.elasticsearchHost", "https://logs"},
		{"uppercase log index", env("dev", "logging", `{"enabled":true,"elasticsearchHost":"logs","index":"KCP"}`), "kcp-tmc:logging.index", "KCP"},
		{"log CA without TLS", env("dev", "logging", `{"enabled":true,"elasticsearchHost":"logs","tls":false,"caCert":"x"}`), "kcp-tmc:logging.caCert", "<PEM>"},
		{"log CA not PEM", env("dev", "logging", `{"enabled":true,"elasticsearchHost":"logs","tls":true,"caCert":"x"}`), "kcp-tmc:logging.caCert", "<PEM>"},
		{"pod logs dir relative", env("dev", "logging", `{"enabled":true,"elasticsearchHost":"logs","podLogsDir":"data/pods"}`), "kcp-tmc:logging.podLogsDir", "data/pods"},
		{"pod logs dir unclean", env("dev", "logging", `{"enabled":true,"elasticsearchHost":"logs","podLogsDir":"/data/../pods/"}`), "kcp-tmc:logging.podLogsDir", "/data/../pods/"},
		{"pod logs dir holds /var/log", env("dev", "logging", `{"enabled":true,"elasticsearchHost":"logs","podLogsDir":"/var"}`), "kcp-tmc:logging.podLogsDir", "/var"},
		{"pod logs dir in the state dir", env("dev", "logging", `{"enabled":true,"elasticsearchHost":"logs","podLogsDir":"/var/lib/fluent-bit/pods"}`), "kcp-tmc:logging.podLogsDir", "/var/lib/fluent-bit/pods"},
		{"password in plaintext", env("dev", "elasticsearchPassword", "SECRET-KEY"), "kcp-tmc:elasticsearchPassword", "<plaintext>"},
		{"bad time zone", env("dev", "backup", `{"timeZone":"Mars/Olympus"}`), "kcp-tmc:backup.timeZone", "Mars/Olympus"},
		{"backups off in prod", env("prod", "backup", `{"enabled":false}`), "kcp-tmc:backup.enabled", "false"},
		{"backup enabled as string", env("dev", "backup", `{"enabled":"yes"}`), "kcp-tmc:backup.enabled", "a string"},
		{"target not YAML", env("dev", "target", `{mode: render`), "kcp-tmc:target", "{mode: render"},
		{"etcd 3.4", env("dev", "etcd", `{"version":"v3.4.30"}`), "kcp-tmc:etcd.version", "v3.4.30"},
		{"etcd image with tag", env("dev", "etcd", `{"image":"quay.io/coreos/etcd:v3.5.1"}`), "kcp-tmc:etcd.image", "quay.io/coreos/etcd:v3.5.1"},
		{"quota as large as the volume", env("dev", "etcd", `{"quotaBackendBytes":"20Gi"}`), "kcp-tmc:etcd.quotaBackendBytes", "20Gi"},
		{"quota above etcd's maximum", env("prod", "etcd", `{"quotaBackendBytes":"16Gi"}`), "kcp-tmc:etcd.quotaBackendBytes", "16Gi"},
		{"kcp spread by host in prod", env("prod", "kcp", `{"antiAffinity":"hostname"}`), "kcp-tmc:kcp.antiAffinity", "hostname"},
		{"one front-proxy in prod", env("prod", "kcp", `{"frontProxyReplicas":1}`), "kcp-tmc:kcp.frontProxyReplicas", "1"},
		{"performance knobs kcp has no flag for", env("dev", "kcp", `{"performance":{"maxRequestsInflight":400}}`), "kcp-tmc:kcp.performance", "<set>"},
		{"gp3 IOPS beyond EBS", env("prod", "storage", `{"iops":20000}`), "kcp-tmc:storage.iops", "20000"},
		{"io2 without IOPS", env("prod", "storage", `{"volumeType":"io2","iops":0,"throughputMiBps":0}`), "kcp-tmc:storage.iops", "0"},
		{"HDD volumes", env("prod", "storage", `{"volumeType":"sc1"}`), "kcp-tmc:storage.volumeType", "sc1"},
		{"volumes deleted with claims in prod", env("prod", "storage", `{"reclaimPolicy":"Delete"}`), "kcp-tmc:storage.reclaimPolicy", "Delete"},
		{"KMS key on an existing class", env("dev", "storage", `{"kmsKeyId":"alias/x"}`), "kcp-tmc:storage.kmsKeyId", "alias/x"},
		{"unknown ingress mode", env("dev", "ingress", `{"mode":"http"}`), "kcp-tmc:ingress.mode", "http"},
		{"ingress controller in render mode", env("dev", "ingress", `{"installController":true}`), "kcp-tmc:ingress.installController", "true"},
		{"ingress controller for a load balancer", env("prod", "ingress", `{"mode":"loadbalancer","installController":true}`), "kcp-tmc:ingress.installController", "true"},
		{"one ingress controller in prod", env("prod", "ingress", `{"mode":"passthrough","installController":true,"controllerReplicas":1}`), "kcp-tmc:ingress.controllerReplicas", "1"},
		{"a gateway listener that is no label", env("prod", "ingress", `{"mode":"gateway","gateway":{"listener":"TLS_443"}}`), "kcp-tmc:ingress.gateway.listener", "TLS_443"},
		{"a gateway in another mode", env("prod", "ingress", `{"gateway":{"className":"eg"}}`), "kcp-tmc:ingress.gateway", "<set>"},
		{"a source range that is an address", env("prod", "ingress", `{"sourceRanges":["203.0.113.7"]}`), "kcp-tmc:ingress.sourceRanges[0]", "203.0.113.7"},
		{"source ranges for a gateway", env("prod", "ingress", `{"mode":"gateway","sourceRanges":["203.0.113.0/24"]}`), "kcp-tmc:ingress.sourceRanges", "203.0.113.0/24"},
		{"a port for an existing gateway", env("prod", "ingress", `{"mode":"gateway","gateway":{"name":"shared","port":8443}}`), "kcp-tmc:ingress.gateway.port", "8443"},
		{"unpinned ingress chart", env("dev", "ingress", `{"controllerVersion":"latest"}`), "kcp-tmc:ingress.controllerVersion", "latest"},
		{"unknown tls mode", env("dev", "tls", `{"mode":"vault"}`), "kcp-tmc:tls.mode", "vault"},
		{"cert-manager install in render mode", env("dev", "tls", `{"installCertManager":true}`), "kcp-tmc:tls.installCertManager", "true"},
		{"cert-manager install in self-managed mode", env("prod", "tls", `{"mode":"self-managed"}`), "kcp-tmc:tls.installCertManager", "true"},
		{"unpinned cert-manager", env("dev", "tls", `{"certManagerVersion":"latest"}`), "kcp-tmc:tls.certManagerVersion", "latest"},
		{"CA duration in years", env("dev", "tls", `{"caDuration":"10y"}`), "kcp-tmc:tls.caDuration", "10y"},
		{"renewal after expiry", env("dev", "tls", `{"leafDuration":"720h","renewBefore":"720h"}`), "kcp-tmc:tls.renewBefore", "720h"},
		{"leaf outlives CA", env("dev", "tls", `{"caDuration":"8000h"}`), "kcp-tmc:tls.leafDuration", "8760h"},
		{"ACME without e-mail", env("prod", "tls", `{"acme":{"email":"ops"}}`), "kcp-tmc:tls.acme.email", "ops"},
		{"existing CAs in plaintext", env("dev", "existingCAs", `{}`), "kcp-tmc:existingCAs", "<plaintext>"},
		{"existing CA not a certificate", secretEnv("dev", "existingCAs", `{"kcp-client-ca":{"cert":"x","key":"SECRET-KEY"}}`), "kcp-tmc:existingCAs.kcp-client-ca", "<secret>"},
		{"existing CA unknown name", secretEnv("dev", "existingCAs", `{"root":{"cert":"x","key":"y"}}`), "kcp-tmc:existingCAs.root", "<secret>"},
		{"existing CAs not a map", secretEnv("dev", "existingCAs", `["SECRET-KEY"]`), "kcp-tmc:existingCAs", "<secret>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.src)
			if err == nil {
				t.Fatalf("Load accepted it: %+v", cfg)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v carries no FieldError", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "config "+tt.wantKey+": ") {
				t.Errorf("error does not name key %s:\n%s", tt.wantKey, msg)
			}
			if !strings.Contains(msg, "invalid value "+strconv.Quote(tt.wantVal)) {
				t.Errorf("error does not quote the bad value %q:\n%s", tt.wantVal, msg)
			}
			if !strings.Contains(msg, ": want ") {
				t.Errorf("error does not say what is allowed:\n%s", msg)
			}
			if strings.Contains(msg, "SECRET-KEY") {
				t.Errorf("error leaks a secret value:\n%s", msg)
			}
		})
	}
}

// TestLoadRefusesUnknownKeys: a misspelled key would leave its setting at
// the profile default without a word; each is refused with the nearest known
// key and the list of valid ones, together with every other problem.
func TestLoadRefusesUnknownKeys(t *testing.T) {
	tests := []struct {
		name, key, nearest string
	}{
		{"misspelled area", "etdc", "etcd"},
		{"wrong case", "Monitoring", "monitoring"},
		{"nested key at the top", "etcdReplicas", "etcd"},
		{"secret misspelled", "slackWebhookURL", "slackWebhookUrl"},
		{"namespace typo", "kcp_tmc:etcd", "etcd"},
		{"namespace transposed", "kcp-tcm:domain", "domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env("dev", tt.key, `{"replicas":3}`, "domain", "bad_domain"))
			full := tt.key
			if !strings.Contains(full, ":") {
				full = Namespace + ":" + full
			}
			var unknown *UnknownKeyError
			if !errors.As(err, &unknown) {
				t.Fatalf("err = %v, want an UnknownKeyError", err)
			}
			msg := err.Error()
			for _, want := range []string{
				"config " + full + ": unknown key",
				"nearest known key is kcp-tmc:" + tt.nearest + ";",
				"valid keys are " + strings.Join(Keys(), ", "),
				"config kcp-tmc:domain: invalid value", // reported in the same round
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
		})
	}
	// Providers' namespaces are theirs.
	if _, err := Load(env("dev", "kubernetes:enableServerSideApply", "true", "aws:region", "eu-west-1")); err != nil {
		t.Errorf("provider keys refused: %v", err)
	}
}

// TestRulesApplyToUnusedModes: a value given is checked whether or not the
// chosen mode (or a disabled area) reads it; only what a mode requires is
// skipped when the mode is not chosen.
func TestRulesApplyToUnusedModes(t *testing.T) {
	tests := []struct {
		name             string
		src              source
		wantKey, wantVal string
	}{
		{"plaintext kubeconfig in render mode", env("dev", "kubeconfig", "apiVersion: v1 SECRET-KEY"), "kcp-tmc:kubeconfig", "<plaintext>"},
		{"render dir escaping in kubeconfig mode", secretEnv("staging", "target", `{"mode":"kubeconfig","renderDir":"../x"}`, "kubeconfig", "k"), "kcp-tmc:target.renderDir", "../x"},
		{"bad schedule, backup off", env("dev", "backup", `{"enabled":false,"schedule":"every day"}`), "kcp-tmc:backup.schedule", "every day"},
		{"bad time zone, backup off", env("dev", "backup", `{"enabled":false,"timeZone":"Mars/Base"}`), "kcp-tmc:backup.timeZone", "Mars/Base"},
		{"bad endpoint, backup off", env("dev", "backup", `{"enabled":false,"endpoint":"minio:9000"}`), "kcp-tmc:backup.endpoint", "minio:9000"},
		{"bad interval, monitoring off", env("dev", "monitoring", `{"enabled":false,"interval":"often"}`), "kcp-tmc:monitoring.interval", "often"},
		{"stack install in render mode, monitoring off", env("dev", "monitoring", `{"enabled":false,"installStack":true}`), "kcp-tmc:monitoring.installStack", "true"},
		{"username without password, logging off", env("dev", "logging", `{"enabled":false,"username":"u"}`), "kcp-tmc:elasticsearchPassword", "<unset>"},
		{"bad port, logging off", env("dev", "logging", `{"enabled":false,"elasticsearchPort":70000}`), "kcp-tmc:logging.elasticsearchPort", "70000"},
		{"bad region, cloud existing", env("dev", "cloud", `{"mode":"existing","region":"mars-1"}`), "kcp-tmc:cloud.region", "mars-1"},
		{"bad VPC CIDR, cloud existing", env("dev", "cloud", `{"vpcCidr":"10.0.0.0/8"}`), "kcp-tmc:cloud.vpcCidr", "10.0.0.0/8"},
		{"bad agent resources, no clusters", env("dev", "agentResources", `{"requests":{"cpu":"2","memory":"1Gi"},"limits":{"cpu":"1","memory":"1Gi"}}`), "kcp-tmc:agentResources.requests.cpu", "2"},
		{"kubeconfig for no cluster", secretEnv("dev", "clusterKubeconfigs", `{"edge-1":"apiVersion: v1"}`), "kcp-tmc:clusterKubeconfigs", "<entry for edge-1>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.src)
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); !strings.Contains(msg, "config "+tt.wantKey+": invalid value "+strconv.Quote(tt.wantVal)) {
				t.Errorf("error does not name %s = %q:\n%s", tt.wantKey, tt.wantVal, msg)
			} else if strings.Contains(msg, "SECRET-KEY") {
				t.Errorf("error leaks a secret value:\n%s", msg)
			}
		})
	}
	// What only a mode needs is not asked for when the mode is not chosen:
	// dev has backup, logging and the EKS layer off and sets none of their
	// required keys.
	if _, err := Load(env("dev", "backup", `{"enabled":false,"target":"s3"}`, "logging", `{"enabled":false}`, "monitoring", `{"enabled":false}`)); err != nil {
		t.Errorf("a disabled area's unset requirements refused: %v", err)
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Load(env("dev", "domain", "bad_domain", "namespace", "Bad", "etcd", `{"replicas":2,"storageSize":"5Gb"}`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, key := range []string{"domain", "namespace", "etcd.replicas", "etcd.storageSize"} {
		if !strings.Contains(err.Error(), "config kcp-tmc:"+key+":") {
			t.Errorf("missing problem for %s in:\n%v", key, err)
		}
	}
}

func TestProfilesAndOverrides(t *testing.T) {
	tests := []struct {
		name      string
		src       source
		replicas  int
		etcd      int
		class     string
		size      string
		mode      string
		zones     int
		cpuLimit  string
		affinity  string
		renderDir string
	}{
		{"dev", env("dev"), 1, 1, "standard", "20Gi", TargetRender, 0, "1", AntiAffinityNone, "rendered/dev"},
		{"staging", env("staging", "target", `{"mode":"kubeconfig","context":"stg"}`), 3, 3, "gp2", "50Gi", TargetKubeconfig, 0, "2", AntiAffinityHostname, ""},
		{"prod", env("prod"), 3, 3, "fast-ssd", "100Gi", TargetKubeconfig, 3, "4", AntiAffinityZone, ""},
		{"override keeps other defaults", env("prod", "etcd", `{"storageSize":"200Gi"}`), 3, 3, "fast-ssd", "200Gi", TargetKubeconfig, 3, "4", AntiAffinityZone, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{cfg.KCP.Replicas, cfg.Etcd.Replicas, cfg.Etcd.StorageClass, cfg.Etcd.StorageSize, cfg.Target.Mode, len(cfg.Zones), cfg.KCP.Resources.Limits.CPU, cfg.Etcd.AntiAffinity, cfg.Target.RenderDir}
			want := []any{tt.replicas, tt.etcd, tt.class, tt.size, tt.mode, tt.zones, tt.cpuLimit, tt.affinity, tt.renderDir}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// TestStackFilesAreValid loads the repository's Pulumi.<stack>.yaml files the
// way the engine hands them to the program (objects as JSON), so a broken
// stack file fails here rather than in a user's `pulumi preview`.
func TestStackFilesAreValid(t *testing.T) {
	for _, stack := range Environments {
		t.Run(stack, func(t *testing.T) {
			src := stackFileSource(t, "../Pulumi."+stack+".yaml")
			if stack == "prod" { // the secrets a user must add with `pulumi config set --secret`
				src.values["kubeconfig"] = "apiVersion: v1\nkind: Config\n"
				src.values["slackWebhookUrl"] = "https://hooks.slack.com/services/T/B/X"
				src.values["elasticsearchPassword"] = "x"
				src.secrets["kubeconfig"], src.secrets["slackWebhookUrl"], src.secrets["elasticsearchPassword"] = true, true, true
			}
			cfg, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Environment != stack {
				t.Errorf("environment = %q, want %q", cfg.Environment, stack)
			}
		})
	}
}

func TestProdStackFileNeedsItsSecrets(t *testing.T) {
	_, err := Load(stackFileSource(t, "../Pulumi.prod.yaml"))
	for _, key := range []string{"kubeconfig", "slackWebhookUrl", "elasticsearchPassword"} {
		if err == nil || !strings.Contains(err.Error(), "config kcp-tmc:"+key+":") {
			t.Errorf("prod without its %s secret: err = %v", key, err)
		}
	}
}

func stackFileSource(t *testing.T, path string) source {
	t.Helper()
	src := source{values: map[string]string{}, secrets: map[string]bool{}}
	for k, v := range mocktest.StackFileConfig(t, path) {
		src.values[strings.TrimPrefix(k, Namespace+":")] = v
	}
	return src
}

// TestExtraFlagsNameTheirKey: a bad entry of kcp.extraFlags is refused
// before anything registers, naming the key, the entry and why.
func TestExtraFlagsNameTheirKey(t *testing.T) {
	for _, tt := range []struct{ config, want string }{
		{`{"extraFlags":["--max-requests-inflight=800"]}`, `config kcp-tmc:kcp.extraFlags[0]: invalid value "--max-requests-inflight=800": want a flag kcp v0.32.3 registers`},
		{`{"extraFlags":[""]}`, `config kcp-tmc:kcp.extraFlags[0]: invalid value "": want --name or --name=value`},
		{`{"frontProxyExtraFlags":["--secure-port=9443"]}`, `config kcp-tmc:kcp.frontProxyExtraFlags[0]: invalid value "--secure-port=9443": want a flag kcp-tmc does not already set`},
	} {
		mocktest.SetConfig(t, map[string]string{"environment": "dev", "kcp": tt.config})
		rec, err := mocktest.Run(t, "dev", Program)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v\nwant %s", err, tt.want)
		}
		if n := len(rec.All()); n != 0 {
			t.Errorf("%d resources registered", n)
		}
	}
	mocktest.SetConfig(t, map[string]string{"environment": "dev", "kcp": `{"extraFlags":["--v=2"]}`})
	if _, err := mocktest.Run(t, "dev", Program); err != nil {
		t.Errorf("a flag kcp has was refused: %v", err)
	}
}

// TestOIDCNamesItsKeys: kcp.oidc's rules name the key, the value and what
// is allowed; a valid block renders.
func TestOIDCNamesItsKeys(t *testing.T) {
	mocktest.SetConfig(t, map[string]string{"environment": "dev", "kcp": `{"oidc":{"issuerURL":"http://id.example.com","groupsClaim":" "}}`})
	_, err := mocktest.Run(t, "dev", Program)
	for _, want := range []string{
		`config kcp-tmc:kcp.oidc.issuerURL: invalid value "http://id.example.com": want the issuer's https:// URL`,
		`config kcp-tmc:kcp.oidc.clientID: invalid value "": want the client id`,
		`config kcp-tmc:kcp.oidc.groupsClaim: invalid value " ": want a claim name`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	}
	mocktest.SetConfig(t, map[string]string{"environment": "dev", "kcp": `{"oidc":{"issuerURL":"https://id.example.com","clientID":"kcp"}}`})
	if _, err := mocktest.Run(t, "dev", Program); err != nil {
		t.Errorf("a valid oidc block was refused: %v", err)
	}
	// With shards, an agent on the root shard passes the front door.
	mocktest.SetConfig(t, map[string]string{"environment": "dev", "kcp": `{"shards":[{"name":"s1"}],"oidc":{"issuerURL":"https://id.example.com","clientID":"kcp"}}`,
		"clusters": `[{"name":"a","shard":"root","resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}]}]`})
	if _, err := mocktest.Run(t, "dev", Program); err != nil {
		t.Errorf("OIDC with shards and an agent on the root shard was refused: %v", err)
	}
}

// TestSecretKeysAreWhatLoadReads sets each documented secret key and checks
// that Load puts it into the field the reference documents it by.
func TestSecretKeysAreWhatLoadReads(t *testing.T) {
	values := map[string]string{
		"kubeconfig":            "apiVersion: v1\nkind: Config\n",
		"existingCAs":           `{}`,
		"slackWebhookUrl":       "https://hooks.slack.com/services/T/B/X",
		"pagerDutyKey":          "routing-key",
		"elasticsearchPassword": "password",
		"backupSecretAccessKey": "backup-secret",
		"clusterKubeconfigs":    `{"edge":"apiVersion: v1"}`,
		"kcpKubeconfig":         "apiVersion: v1\nkind: Config\nclusters: [{name: kcp, cluster: {server: \"https://kcp.example.com\"}}]\n",
	}
	// What a secret needs beside it to be valid.
	needs := map[string][]string{
		"backupSecretAccessKey": {"backup", `{"target":"s3","endpoint":"http://minio:9000","accessKeyId":"k"}`},
		"clusterKubeconfigs":    {"tls", `{"mode":"self-managed"}`, "clusters", `[{"name":"edge","resources":[{"group":"apps","version":"v1","kind":"Deployment","plural":"deployments"}]}]`},
	}
	for _, s := range SecretKeys {
		t.Run(s.Key, func(t *testing.T) {
			v, ok := values[s.Key]
			if !ok {
				t.Fatalf("no test value for the secret %s", s.Key)
			}
			cfg, err := Load(secretEnv("dev", append(needs[s.Key], s.Key, v)...))
			if err != nil {
				t.Fatal(err)
			}
			field := reflect.ValueOf(cfg).Elem().FieldByName(strings.Split(s.Field, ".")[0])
			for _, name := range strings.Split(s.Field, ".")[1:] {
				field = field.FieldByName(name)
			}
			if !field.IsValid() || field.IsZero() {
				t.Errorf("Load left %s unset for kcp-tmc:%s", s.Field, s.Key)
			}
		})
	}
}

// TestConfigTagsAreTheLoadedKeys keeps the `config` tags the reference is
// built from in step with the keys Load reads (configFields).
func TestConfigTagsAreTheLoadedKeys(t *testing.T) {
	var tags, loaded []string
	typ := reflect.TypeOf(Config{})
	for i := range typ.NumField() {
		if tag := typ.Field(i).Tag.Get("config"); tag != "" {
			tags = append(tags, tag)
		}
	}
	for _, f := range configFields(&Config{}) {
		loaded = append(loaded, f.key)
	}
	if !reflect.DeepEqual(tags, loaded) {
		t.Errorf("config tags %v, but Load reads %v", tags, loaded)
	}
}

// TestNestedKeyPaths: a key an object does not know, or a value of the wrong
// type, is refused at its full path with list indexes, however deep
// (encoding/json names the field alone, or its path without indexes).
func TestNestedKeyPaths(t *testing.T) {
	widget := `"resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}]`
	for _, tt := range []struct {
		name, key, value, want string
	}{
		{"an area's key", "etcd", `{"replicas":3,"replica":3}`, "kcp-tmc:etcd.replica"},
		{"in an object of an area", "kcp", `{"cache":{"mode":"embedded","modes":"x"}}`, "kcp-tmc:kcp.cache.modes"},
		{"in a list entry", "clusters", `[{"name":"a",` + widget + `},{"name":"b","zones":"x",` + widget + `}]`, "kcp-tmc:clusters[1].zones"},
		{"deeper in a list entry", "clusters", `[{"name":"a","monitoring":{"ruleLabels":{},"label":"x"},` + widget + `}]`, "kcp-tmc:clusters[0].monitoring.label"},
		{"in a list entry's list", "clusters", `[{"name":"a","resources":[{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets","scope":"x"}]}]`, "kcp-tmc:clusters[0].resources[0].scope"},
		{"a known key in another case is no unknown one", "clusters", `[{"name":"a","LOGDEBUG":true,"extra":1,` + widget + `}]`, "kcp-tmc:clusters[0].extra"},
		{"a string for a number in a list entry", "clusters", `[{"name":"a",` + widget + `},{"name":"b","replicas":"two",` + widget + `}]`,
			`kcp-tmc:clusters[1].replicas: invalid value "a string": want a value of type integer`},
		{"a number for a string in a list entry's list", "clusters", `[{"name":"a","resources":[{"group":"example.com","version":1,"kind":"Widget","plural":"widgets"}]}]`,
			`kcp-tmc:clusters[0].resources[0].version: invalid value "a number": want a value of type string`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env("dev", tt.key, tt.value))
			want := "config " + tt.want
			if !strings.Contains(tt.want, "invalid value") {
				want += `: invalid value "<set>": want no such key`
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v\nwant %s", err, want)
			}
		})
	}
}
