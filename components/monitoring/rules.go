package monitoring

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kcp-tmc/kcp-tmc/components/kcp"
	"github.com/kcp-tmc/kcp-tmc/components/logging"
)

// Rule is one Prometheus recording or alerting rule.
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Group is a rule group.
type Group struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []Rule `yaml:"rules"`
}

// Jobs are the scrape job names the rules rely on (the ServiceMonitors'
// jobLabel makes them so).
const (
	JobKCP        = "kcp"
	JobFrontProxy = "kcp-front-proxy"
	// JobCache is the separate cache server (kcp.cache.mode separate).
	JobCache = "kcp-cache"
	JobEtcd  = "etcd"
	// backupJobs matches the backup CronJobs of every etcd cluster
	// (shard.BackupJob): etcd-backup and etcd-<shard>-backup.
	backupJobs   = "etcd(-.+)?-backup"
	JobSyncAgent = "api-syncagent"
	// AgentRewatchCronJob is the agent's rewatch CronJob (agents.RewatchName;
	// this package cannot import agents, which installs AgentGroup).
	AgentRewatchCronJob = JobSyncAgent + "-rewatch"
	// AgentRewatchLate is how long the rewatch may go without a successful
	// run (six of its five-minute runs) before AgentRewatchFailing fires.
	AgentRewatchLate = 30 * time.Minute
)

// SLO targets, the production targets the README names: 99.9% availability,
// < 0.1% errors, sync < 5 s.
const (
	AvailabilityTarget = 0.999
	errorBudget        = 1 - AvailabilityTarget
	SyncLatencySeconds = 5
)

// cronJobLate: no run of a CronJob whose name matches cronjobs (a regular
// expression) succeeded for longer than late.
func cronJobLate(cronjobs string, late time.Duration) string {
	return fmt.Sprintf(`time() - kube_cronjob_status_last_successful_time{cronjob=~"%s"} > %d`, cronjobs, int(late.Seconds()))
}

// jobGaveUp: a Job of a CronJob whose name matches cronjobs gave up (its
// Failed condition; a pod that failed before a retry succeeded is not that).
func jobGaveUp(cronjobs string) string {
	return `max by (namespace, job_name) (kube_job_failed{job_name=~"` + cronjobs + `-.*",condition="true"}) == 1`
}

func alert(name, severity, expr, forDur, summary, description string) Rule {
	return Rule{
		Alert: name, Expr: expr, For: forDur,
		Labels: map[string]string{"severity": severity},
		Annotations: map[string]string{
			"summary":     summary,
			"description": description,
			"runbook_url": RunbookURL + "#" + strings.ToLower(name),
		},
	}
}

// RunbookURL is where every alert's runbook_url points (one anchor per alert).
var RunbookURL = "https://github.com/kcp-tmc/kcp-tmc/blob/main/docs/runbook.md"

// Groups returns every rule group. Only series that exist upstream are used:
// up, apiserver_*, etcd_*, workqueue_*, kube-state-metrics kube_*,
// cert-manager's certmanager_*, and controller-runtime's metrics of the
// api-syncagent. The TMC-era series tmc_component_health and
// syncer_sync_errors_total no program exports any more; they are recording rules over real series here.
// AgentGroup is the api-syncagent rules. The agents' metrics are scraped on
// their physical clusters, so the agents component installs this group there
// too; Groups includes it for a Prometheus that federates those metrics.
func AgentGroup() Group {
	return Group{Name: "kcp-tmc.agents", Rules: []Rule{
		{Record: "syncer_sync_errors_total", Expr: fmt.Sprintf(
			`sum by (namespace, controller) (controller_runtime_reconcile_errors_total{job="%s"})`, JobSyncAgent)},
		alert("SyncerHighErrorRate", "warning", "rate(syncer_sync_errors_total[5m]) > 0.1", "2m",
			"api-syncagent {{ $labels.controller }} fails to sync",
			"The agent's controller {{ $labels.controller }} reports {{ $value | humanize }} reconcile errors per second."),
		alert("SyncLatencyHigh", "warning", fmt.Sprintf(
			`histogram_quantile(0.99, sum by (namespace, le) (rate(controller_runtime_reconcile_time_seconds_bucket{job="%s"}[5m]))) > %d`, JobSyncAgent, SyncLatencySeconds), "10m",
			"Syncing takes longer than the 5 s objective",
			"The 99th percentile of api-syncagent reconcile time is {{ $value | humanizeDuration }}."),
		// Nothing syncs to or from this cluster while its agent is down;
		// the reconcile alerts above then see no reconciles and stay quiet.
		alert("SyncerDown", "critical", fmt.Sprintf(`up{job="%s"} == 0`, JobSyncAgent), "5m",
			"api-syncagent is down in {{ $labels.namespace }}",
			"The agent has not answered Prometheus' scrape for 5 minutes: objects are not synced between kcp and this cluster."),
		// An object waits in the agent's queue before its reconcile starts,
		// which SyncLatencyHigh (the reconcile's own time) does not count:
		// the agent's client limit makes a burst wait minutes in the queue
		// while each reconcile stays fast (README "Sync at scale").
		// controller-runtime's buckets are decades (…, 1, 10, 100 s): 10 s
		// is the first above the 5 s objective.
		// The rewatch is what makes the agent watch a shard it could not
		// reach at its one try (docs/agents.md): failing, such a shard stays
		// unsynced with every other alert quiet. A CronJob that never
		// succeeded has no last-success series: its age counts then.
		alert("AgentRewatchFailing", "warning", fmt.Sprintf(`(%[1]s)
or
(time() - kube_cronjob_created{cronjob="%[2]s"} > %[3]d unless on (namespace, cronjob) kube_cronjob_status_last_successful_time{cronjob="%[2]s"})`,
			cronJobLate(AgentRewatchCronJob, AgentRewatchLate), AgentRewatchCronJob, int(AgentRewatchLate.Seconds())), "5m",
			"The agent's rewatch CronJob in {{ $labels.namespace }} has not succeeded for 30 minutes",
			"api-syncagent is not told to watch again the shards it could not reach: workspaces on such a shard stay unsynced while the agent looks healthy."),
		alert("SyncBacklog", "warning", fmt.Sprintf(`(
  sum by (namespace, controller) (rate(workqueue_queue_duration_seconds_count{job="%[1]s"}[5m]))
  - sum by (namespace, controller) (rate(workqueue_queue_duration_seconds_bucket{job="%[1]s",le=~"10(\\.0)?"}[5m]))
) / sum by (namespace, controller) (rate(workqueue_queue_duration_seconds_count{job="%[1]s"}[5m])) > 0.01`, JobSyncAgent), "10m",
			"api-syncagent {{ $labels.controller }} is behind",
			"{{ $value | humanizePercentage }} of the objects queued for api-syncagent's controller {{ $labels.controller }} waited more than 10 s before their sync began."),
	}}
}

func Groups() []Group {
	burn := func(window string) string {
		// "or ... * 0": with no 5xx at all the ratio is 0, not absent.
		return fmt.Sprintf(`(
  sum by (namespace) (rate(apiserver_request_total{job="%[1]s",code=~"5.."}[%[2]s]))
  or
  sum by (namespace) (rate(apiserver_request_total{job="%[1]s"}[%[2]s])) * 0
)
/
sum by (namespace) (rate(apiserver_request_total{job="%[1]s"}[%[2]s]))`, JobKCP, window)
	}
	var slo []Rule
	for _, w := range []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d"} {
		slo = append(slo, Rule{Record: "kcp:apiserver_request:error_ratio_rate" + w, Expr: burn(w)})
	}
	// Multi-window, multi-burn-rate (SRE workbook, table 5-8) over a 30-day 99.9% SLO.
	burnAlert := func(name, severity, long, short string, factor float64, forDur string) Rule {
		threshold := fmt.Sprintf("%g", factor*errorBudget)
		return alert(name, severity,
			fmt.Sprintf("kcp:apiserver_request:error_ratio_rate%s > %s\nand\nkcp:apiserver_request:error_ratio_rate%s > %s", long, threshold, short, threshold),
			forDur,
			fmt.Sprintf("kcp is burning its 99.9%% availability budget %gx too fast", factor),
			fmt.Sprintf("Over the last %s (and %s) more than %s of kcp API requests in {{ $labels.namespace }} failed with 5xx.", long, short, threshold))
	}
	slo = append(slo,
		burnAlert("KCPErrorBudgetBurnFast", "critical", "1h", "5m", 14.4, "2m"),
		burnAlert("KCPErrorBudgetBurnMedium", "critical", "6h", "30m", 6, "15m"),
		burnAlert("KCPErrorBudgetBurnSlow", "warning", "1d", "2h", 3, "1h"),
		burnAlert("KCPErrorBudgetBurnTicket", "warning", "3d", "6h", 1, "3h"),
	)

	return []Group{
		{Name: "kcp-tmc.components", Rules: []Rule{
			{Record: "tmc_component_health", Expr: fmt.Sprintf(
				`label_replace(min by (namespace, job) (up{job=~"%s|%s|%s|%s"}), "component", "$1", "job", "(.*)")`, JobKCP, JobFrontProxy, JobEtcd, JobCache)},
			alert("TMCComponentDown", "critical", "tmc_component_health == 0", "5m",
				"{{ $labels.component }} is down in {{ $labels.namespace }}",
				"At least one {{ $labels.component }} instance has not answered Prometheus' scrape for 5 minutes."),
		}},
		AgentGroup(),
		{Name: "kcp-tmc.etcd", Rules: []Rule{
			alert("EtcdNoLeader", "critical", fmt.Sprintf(`etcd_server_has_leader{job="%s"} == 0`, JobEtcd), "1m",
				"etcd member {{ $labels.instance }} has no leader", "The member cannot serve writes: the cluster lost quorum or this member is partitioned."),
			// Per cluster (the scraped Service): each shard's etcd has its own quorum.
			alert("EtcdMembersDown", "critical", fmt.Sprintf(`count by (namespace, service) (up{job="%s"} == 0) > 0`, JobEtcd), "3m",
				"{{ $value }} member(s) of etcd cluster {{ $labels.service }} down in {{ $labels.namespace }}",
				"One more failure may cost that cluster its quorum and with it every write of its kcp shard."),
			alert("EtcdHighFsyncDuration", "warning", fmt.Sprintf(
				`histogram_quantile(0.99, sum by (namespace, instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{job="%s"}[5m]))) > 0.5`, JobEtcd), "10m",
				"etcd WAL fsync is slow on {{ $labels.instance }}", "p99 WAL fsync is {{ $value | humanizeDuration }}: the disk is too slow for etcd."),
			alert("EtcdHighCommitDuration", "warning", fmt.Sprintf(
				`histogram_quantile(0.99, sum by (namespace, instance, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket{job="%s"}[5m]))) > 0.25`, JobEtcd), "10m",
				"etcd backend commits are slow on {{ $labels.instance }}", "p99 backend commit is {{ $value | humanizeDuration }}."),
			alert("EtcdDatabaseNearQuota", "warning", fmt.Sprintf(
				`etcd_mvcc_db_total_size_in_bytes{job="%[1]s"} / etcd_server_quota_backend_bytes{job="%[1]s"} > 0.8`, JobEtcd), "10m",
				"etcd database on {{ $labels.instance }} is above 80% of its quota", "At the quota etcd refuses writes (NOSPACE): compact and defragment, or raise etcd.quotaBackendBytes."),
		}},
		{Name: "kcp-tmc.kcp-api", Rules: []Rule{
			alert("KCPAPIErrorRate", "warning", fmt.Sprintf(
				`sum by (namespace) (rate(apiserver_request_total{job="%[1]s",code=~"5.."}[5m])) / sum by (namespace) (rate(apiserver_request_total{job="%[1]s"}[5m])) > %g`, JobKCP, errorBudget), "10m",
				"kcp API error rate above 0.1%", "{{ $value | humanizePercentage }} of kcp API requests fail with 5xx."),
			alert("KCPAPIHighLatency", "warning", fmt.Sprintf(
				`histogram_quantile(0.99, sum by (namespace, le) (rate(apiserver_request_duration_seconds_bucket{job="%s",verb!~"WATCH|CONNECT"}[5m]))) > 1`, JobKCP), "10m",
				"kcp API p99 latency above 1 s", "p99 request latency is {{ $value | humanizeDuration }}."),
			alert("KCPWorkqueueBacklog", "warning", fmt.Sprintf(`sum by (namespace, name) (workqueue_depth{job="%s"}) > 1000`, JobKCP), "15m",
				"kcp controller queue {{ $labels.name }} is backing up", "{{ $value }} items are waiting in workqueue {{ $labels.name }}."),
		}},
		{Name: "kcp-tmc.slo", Rules: slo},
		{Name: "kcp-tmc.certificates", Rules: []Rule{
			// cert-manager's own renewal time (status.renewalTime; 0 until
			// first issued) rather than a fixed distance to expiry: each
			// certificate renews at its own renewBefore (leaves at
			// tls.renewBefore, down to 8 days; CAs with a third of their
			// life left), so a fixed 14 days would warn at every healthy renewal
			// of a leaf renewed 8 days ahead and say nothing for a month
			// about a CA whose renewal failed.
			alert("CertificateRenewalOverdue", "warning", `time() - (certmanager_certificate_renewal_timestamp_seconds > 0) > 86400`, "1h",
				"Certificate {{ $labels.name }} was not renewed a day after its renewal time",
				"cert-manager should have renewed {{ $labels.namespace }}/{{ $labels.name }} {{ $value | humanizeDuration }} ago; check its CertificateRequest before it expires."),
			alert("CertificateExpiresVerySoon", "critical", `certmanager_certificate_expiration_timestamp_seconds - time() < 3 * 86400`, "10m",
				"Certificate {{ $labels.name }} expires in less than 3 days", "When it expires, clients of {{ $labels.name }} are refused."),
			// kcp measures the certificate of every client that presents one
			// to it directly (Prometheus, the front-proxy's index connection,
			// agents' certificate identities, other shards), per request: one
			// this close to expiry was not renewed or its renewal not picked
			// up, in any TLS mode (self-managed stacks have no cert-manager
			// series). Prometheus 3 stores a bucket's le as a float
			// ("604800.0"), 2 as exposed ("604800"): both match.
			alert("KCPClientCertificateExpiresSoon", "warning", fmt.Sprintf(
				`sum by (namespace) (increase(apiserver_client_certificate_expiration_seconds_bucket{job="%s",le=~"604800(\\.0)?"}[1h])) > 0`, JobKCP), "0m",
				"A client presented a certificate to kcp that expires within 7 days",
				"Renewals happen earlier (tls.renewBefore, at least 8 days): a client is using a certificate that was not renewed, or an old one it keeps in memory."),
			alert("KCPClientCertificateExpiresVerySoon", "critical", fmt.Sprintf(
				`sum by (namespace) (increase(apiserver_client_certificate_expiration_seconds_bucket{job="%s",le=~"86400(\\.0)?"}[15m])) > 0`, JobKCP), "0m",
				"A client presented a certificate to kcp that expires within a day", "When it expires, kcp refuses that client."),
			// The front-proxy forwards with a certificate it read at start:
			// once that expires kcp refuses everything it forwards (401).
			// The front-proxy's metric has only method and code, and it
			// answers a client whose credential it cannot authenticate with
			// 401 itself (kcp v0.32.3 pkg/proxy/filters): one such client
			// at a quiet hour is most of its answers. kcp failing to
			// authenticate requests at the same time (its
			// authentication_attempts{result="error"}: the expired or
			// foreign forwarding certificate fails kcp's requestheader
			// authenticator) is what says the 401s are kcp's.
			alert("FrontProxyUnauthorized", "critical", fmt.Sprintf(
				`sum by (namespace) (rate(proxy_request_duration_seconds_count{job="%[1]s",code="401"}[5m])) / sum by (namespace) (rate(proxy_request_duration_seconds_count{job="%[1]s"}[5m])) > 0.5`+
					` and on (namespace) sum by (namespace) (rate(authentication_attempts{job="%[2]s",result="error"}[5m])) > 0`, JobFrontProxy, JobKCP), "10m",
				"Most requests through the front-proxy are refused as unauthorized",
				"{{ $value | humanizePercentage }} of the front-proxy's answers are 401: its forwarding certificate may have expired in the running front-proxy (restart it), or the requestheader CA changed."),
			// The front-proxy takes its renewed forwarding certificate only
			// at the weekly restart (kcp.FrontProxyRestartName).
			alert("FrontProxyRestartStale", "warning", cronJobLate(kcp.FrontProxyRestartName, kcp.FrontProxyRestartLate), "15m",
				"The front-proxy's weekly restart by {{ $labels.cronjob }} was missed",
				"Its last success was {{ $value | humanizeDuration }} ago. A renewed forwarding certificate reaches the front-proxy only at that restart: once the old one expires, every request through it is refused."),
			alert("FrontProxyRestartFailed", "warning", jobGaveUp(kcp.FrontProxyRestartName), "0m",
				"The front-proxy's restart job {{ $labels.job_name }} failed", "Its log says why kubectl could not restart deployment/kcp-front-proxy."),
		}},
		{Name: "kcp-tmc.backup", Rules: []Rule{
			// Every etcd cluster's jobs: etcd-backup (the root shard's) and
			// etcd-<shard>-backup.
			alert("EtcdBackupStale", "critical", cronJobLate(backupJobs, 26*time.Hour), "10m",
				"No successful backup by {{ $labels.cronjob }} for 26 hours", "The last successful {{ $labels.cronjob }} run in {{ $labels.namespace }} was {{ $value | humanizeDuration }} ago."),
			alert("EtcdBackupFailed", "warning", jobGaveUp(backupJobs), "0m",
				"etcd backup job {{ $labels.job_name }} failed", "Every retry failed; its containers are its steps, the last with output failed (`kubectl logs job/{{ $labels.job_name }} --all-containers --prefix`). Fires until the Job is deleted."),
			alert("EtcdBackupVerificationStale", "warning", cronJobLate(backupJobs+"-verify", 8*24*time.Hour), "1h",
				"No verified restore of the newest snapshot by {{ $labels.cronjob }} for 8 days", "The weekly {{ $labels.cronjob }} job has not succeeded; that cluster's backups may not restore."),
		}},
		// fluent-bit (components/logging): its readiness stays ready through
		// an Elasticsearch outage (unlimited retries), so these are what
		// tells anyone that logs are not arriving.
		{Name: "kcp-tmc.logging", Rules: []Rule{
			alert("LogShippingStalled", "warning", `sum by (namespace, pod) (rate(fluentbit_output_retries_total[10m])) > 0
unless
sum by (namespace, pod) (rate(fluentbit_output_proc_records_total[10m])) > 0`, "15m",
				"fluent-bit {{ $labels.pod }} ships no logs",
				"Elasticsearch has refused or not answered every bulk request of this node's fluent-bit for 15 minutes: its logs wait on the node's disk, up to "+logging.BufferLimit+", then the oldest are dropped."),
			alert("LogsDropped", "warning", `sum by (namespace, pod) (increase(fluentbit_output_dropped_records_total[10m])) > 0`, "0m",
				"fluent-bit {{ $labels.pod }} dropped log records",
				"{{ $value | humanize }} records were dropped in 10 minutes: the node's buffer for Elasticsearch is full ("+logging.BufferLimit+"); those logs are lost."),
		}},
	}
}

// Alerts returns every alerting rule.
func Alerts() []Rule {
	var out []Rule
	for _, g := range Groups() {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// RulesFile renders the groups as a Prometheus rules file (what promtool reads).
func RulesFile(groups []Group) (string, error) {
	b, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		return "", fmt.Errorf("rules file: %w", err)
	}
	return string(b), nil
}
