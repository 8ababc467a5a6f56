package cluster

// external-dns on the node, as a user runs it beside kcp-tmc: the real
// program (hack/toolchain.sh cluster builds the pinned release) with its
// `service` source, which reads the annotations kcp-tmc puts on its load
// balancers, and its `gateway-tlsroute` source, which reads the hosts of
// kcp-tmc's TLSRoutes and their Gateway's address, and this machine's DNS behind external-dns's webhook provider:
// a record it publishes resolves here (/etc/hosts) and in the cluster
// (CoreDNS), as one in a Route 53 zone would everywhere.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// ExternalDNSZone is the zone external-dns manages on the node (its
// --domain-filter); every test stack's domain is below it.
const ExternalDNSZone = "example.com"

// webhookMediaType is external-dns v0.22.0's webhook protocol
// (provider/webhook/api MediaTypeFormatAndVersion).
const webhookMediaType = "application/external.dns.webhook+json;version=1"

// dnsRecord is external-dns's endpoint.Endpoint as its webhook sends it;
// what this provider does not read is kept as sent.
type dnsRecord struct {
	DNSName          string            `json:"dnsName,omitempty"`
	Targets          []string          `json:"targets,omitempty"`
	RecordType       string            `json:"recordType,omitempty"`
	SetIdentifier    string            `json:"setIdentifier,omitempty"`
	RecordTTL        int64             `json:"recordTTL,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	ProviderSpecific json.RawMessage   `json:"providerSpecific,omitempty"`
}

func (r dnsRecord) key() string { return r.DNSName + "|" + r.RecordType + "|" + r.SetIdentifier }

// dnsChanges is external-dns's plan.Changes.
type dnsChanges struct {
	Create    []dnsRecord `json:"create,omitempty"`
	UpdateOld []dnsRecord `json:"updateOld,omitempty"`
	UpdateNew []dnsRecord `json:"updateNew,omitempty"`
	Delete    []dnsRecord `json:"delete,omitempty"`
}

// Published is an A record external-dns made: when, and to which address.
type Published struct {
	IP  string
	TTL int64
	At  time.Time
}

// dnsWebhook is the zone: every record external-dns wrote (its TXT
// ownership records too, which it reads back), A records published
// through publish and withdrawn through withdraw. Records of other types
// (AAAA, CNAME) are kept but resolve nowhere: the node's load balancer
// gives IPv4 addresses only, and refusing them would fail every sync.
type dnsWebhook struct {
	zone      string
	publish   func(ctx context.Context, name, ip string) error
	withdraw  func(ctx context.Context, name string) error
	mu        sync.Mutex
	records   map[string]dnsRecord
	published map[string]Published
	// listed is closed at external-dns's first read of the zone: its
	// controller runs.
	listed     chan struct{}
	listedOnce sync.Once
}

func newDNSWebhook(zone string, publish func(context.Context, string, string) error, withdraw func(context.Context, string) error) *dnsWebhook {
	return &dnsWebhook{zone: zone, publish: publish, withdraw: withdraw, records: map[string]dnsRecord{}, published: map[string]Published{},
		listed: make(chan struct{})}
}

func (w *dnsWebhook) handler() http.Handler {
	m := http.NewServeMux()
	reply := func(rw http.ResponseWriter, v any) {
		rw.Header().Set("Content-Type", webhookMediaType)
		_ = json.NewEncoder(rw).Encode(v)
	}
	m.HandleFunc("/{$}", func(rw http.ResponseWriter, _ *http.Request) {
		reply(rw, map[string][]string{"include": {w.zone}})
	})
	m.HandleFunc("/records", func(rw http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodGet:
			reply(rw, w.list())
			w.listedOnce.Do(func() { close(w.listed) })
		case http.MethodPost:
			var ch dnsChanges
			if err := json.NewDecoder(req.Body).Decode(&ch); err != nil {
				http.Error(rw, err.Error(), http.StatusBadRequest)
				return
			}
			// Not the request's context: a change cut short by external-dns
			// giving up would leave the zone half-changed.
			if err := w.apply(context.WithoutCancel(req.Context()), ch); err != nil {
				http.Error(rw, err.Error(), http.StatusInternalServerError)
				return
			}
			rw.WriteHeader(http.StatusNoContent)
		default:
			http.Error(rw, "method "+req.Method, http.StatusBadRequest)
		}
	})
	m.HandleFunc("/adjustendpoints", func(rw http.ResponseWriter, req *http.Request) {
		var recs []dnsRecord
		if err := json.NewDecoder(req.Body).Decode(&recs); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		reply(rw, recs)
	})
	return m
}

func (w *dnsWebhook) list() []dnsRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]dnsRecord, 0, len(w.records))
	for _, r := range w.records {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// apply deletes, then writes (creates and updates); an A record's first
// target is what its name resolves to. The zone changes only where the
// name's resolution did, so a failed change is sent again by the next sync.
// A real zone keeps no labels on address records (the TXT registry puts
// its owner on them from the TXT records), so neither does this one.
func (w *dnsWebhook) apply(ctx context.Context, ch dnsChanges) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, r := range append(ch.Delete, ch.UpdateOld...) {
		if r.RecordType == "A" && !hasRecord(ch.UpdateNew, r) {
			if err := w.withdraw(ctx, r.DNSName); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(w.published, r.DNSName)
		}
		delete(w.records, r.key())
	}
	for _, r := range append(ch.Create, ch.UpdateNew...) {
		if r.RecordType == "A" {
			if len(r.Targets) == 0 || net.ParseIP(r.Targets[0]) == nil {
				errs = append(errs, fmt.Errorf("A record %s: targets %v", r.DNSName, r.Targets))
				continue
			}
			if err := w.publish(ctx, r.DNSName, r.Targets[0]); err != nil {
				errs = append(errs, err)
				continue
			}
			w.published[r.DNSName] = Published{IP: r.Targets[0], TTL: r.RecordTTL, At: time.Now()}
		}
		if r.RecordType != "TXT" {
			r.Labels = nil
		}
		w.records[r.key()] = r
	}
	return errors.Join(errs...)
}

// hasRecord says whether recs has a record of r's name and type (an
// update's new side: the name stays published).
func hasRecord(recs []dnsRecord, r dnsRecord) bool {
	for _, o := range recs {
		if o.key() == r.key() {
			return true
		}
	}
	return false
}

// Published is the A record external-dns made for name, if any.
func (c *Cluster) Published(name string) (Published, bool) {
	if c.node == nil || c.node.dns == nil {
		return Published{}, false
	}
	w := c.node.dns.hook
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.published[name]
	return p, ok
}

// externalDNS is the running webhook server; the program is one of c.procs.
type externalDNS struct {
	hook   *dnsWebhook
	server *http.Server
}

// startExternalDNS serves the zone and starts external-dns on it: the
// service and gateway-tlsroute sources, ownership TXT records (its default registry), a sync on
// every Service change (--events) and every minute.
func (c *Cluster) startExternalDNS() (*externalDNS, error) {
	hook := newDNSWebhook(ExternalDNSZone, c.PublishHost, c.WithdrawHost)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: hook.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	err = c.startBinary("external-dns", filepath.Join(c.bin, "external-dns"),
		"--kubeconfig="+c.Kubeconfig,
		// TLSRoutes too: a Gateway front door's names (docs/ingress.md "DNS").
		"--source=service", "--source=gateway-tlsroute",
		"--provider=webhook", "--webhook-provider-url=http://"+l.Addr().String(),
		"--domain-filter="+ExternalDNSZone,
		"--txt-owner-id=kcp-tmc-cluster-e2e",
		// v0.22.0 has no default: sync removes the records of Services that go.
		"--policy=sync",
		"--events", "--min-event-sync-interval=1s", "--interval=1m",
		// A change is kubectl calls here (Route 53 takes as long): more
		// than the default 10 s, past which external-dns exits for good.
		"--webhook-provider-write-timeout=2m",
		"--metrics-address=127.0.0.1:0",
	)
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	select {
	case <-hook.listed:
	case <-time.After(time.Minute):
		c.stopProcess("external-dns")
		_ = srv.Close()
		return nil, fmt.Errorf("it did not read the zone within a minute; its log:\n%s", c.Log("external-dns"))
	}
	return &externalDNS{hook: hook, server: srv}, nil
}

func (d *externalDNS) stop() { _ = d.server.Close() }
