package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kcp-tmc/kcp-tmc/components/monitoring"
	"github.com/kcp-tmc/kcp-tmc/pkg/toolchain"
)

// pagerStub stands in for Slack's incoming webhook and PagerDuty's Events
// API v2: it records what Alertmanager posts and answers as they do (Slack
// "ok", PagerDuty 202), so a delivery counts as sent and is not retried.
type pagerStub struct {
	srv   *httptest.Server
	mu    sync.Mutex
	slack []slackMessage
	pd    []pagerDutyEvent
}

type slackMessage struct {
	Channel     string `json:"channel"`
	Attachments []struct {
		Title string `json:"title"`
		Text  string `json:"text"`
	} `json:"attachments"`
}

type pagerDutyEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Payload     struct {
		Summary  string `json:"summary"`
		Severity string `json:"severity"`
	} `json:"payload"`
}

func newPagerStub(t *testing.T) *pagerStub {
	p := &pagerStub{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		defer p.mu.Unlock()
		switch r.URL.Path {
		case "/slack":
			var m slackMessage
			if err := json.Unmarshal(body, &m); err != nil {
				t.Errorf("Slack message is not JSON: %v\n%s", err, body)
			}
			p.slack = append(p.slack, m)
			_, _ = io.WriteString(w, "ok")
		case "/v2/enqueue":
			var e pagerDutyEvent
			if err := json.Unmarshal(body, &e); err != nil {
				t.Errorf("PagerDuty event is not JSON: %v\n%s", err, body)
			}
			p.pd = append(p.pd, e)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"status":"success","message":"Event processed"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// slackTitled returns the message whose first attachment has this title.
func (p *pagerStub) slackTitled(title string) (slackMessage, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.slack {
		if len(m.Attachments) > 0 && m.Attachments[0].Title == title {
			return m, true
		}
	}
	return slackMessage{}, false
}

// pages returns the PagerDuty events whose summary names the alert.
func (p *pagerStub) pages(alert string) []pagerDutyEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []pagerDutyEvent
	for _, e := range p.pd {
		if strings.Contains(e.Payload.Summary, alert) {
			out = append(out, e)
		}
	}
	return out
}

func (p *pagerStub) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var titles []string
	for _, m := range p.slack {
		for _, a := range m.Attachments {
			titles = append(titles, a.Title)
		}
	}
	var pages []string
	for _, e := range p.pd {
		pages = append(pages, e.EventAction+" "+e.Payload.Summary)
	}
	return fmt.Sprintf("Slack got %q; PagerDuty got %q", titles, pages)
}

// startAlertmanager runs the real Alertmanager on the configuration kcp-tmc
// renders (monitoring.AlertmanagerConfig, what the Secret holds), Slack's
// webhook and PagerDuty's API at the stub: PagerDuty's address is the one
// global setting a user never changes, so only the test sets it.
func startAlertmanager(t *testing.T, dir, web string, stub *pagerStub, channel, pagerDutyKey string) {
	t.Helper()
	bin, err := toolchain.Find("alertmanager")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := monitoring.AlertmanagerConfig(stub.srv.URL+"/slack", channel, pagerDutyKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg += fmt.Sprintf("global:\n  pagerduty_url: %s/v2/enqueue\n", stub.srv.URL)
	path := filepath.Join(dir, "alertmanager.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// --cluster.listen-address= : one instance, no gossip to wait for.
	am := exec.Command(bin, "--config.file="+path, "--storage.path="+filepath.Join(dir, "alertmanager"),
		"--web.listen-address="+web, "--cluster.listen-address=", "--log.level=warn")
	var log strings.Builder
	am.Stdout, am.Stderr = &log, &log
	am.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := am.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-am.Process.Pid, syscall.SIGKILL)
		_ = am.Wait()
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", log.String())
		}
	})
}
