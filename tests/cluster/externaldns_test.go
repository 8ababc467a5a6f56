package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestDNSWebhook: the node's zone speaks external-dns v0.22.0's webhook
// protocol — negotiation names the zone, changes are applied (an A record
// published, moved, withdrawn; TXT ownership records kept and listed back),
// and a record it cannot serve fails the change.
func TestDNSWebhook(t *testing.T) {
	var log []string
	w := newDNSWebhook("example.com",
		func(_ context.Context, name, ip string) error { log = append(log, "publish "+name+" "+ip); return nil },
		func(_ context.Context, name string) error { log = append(log, "withdraw "+name); return nil })
	srv := httptest.NewServer(w.handler())
	defer srv.Close()

	post := func(path, body string) *http.Response {
		t.Helper()
		resp, err := http.Post(srv.URL+path, webhookMediaType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	var filter map[string][]string
	if err := json.NewDecoder(resp.Body).Decode(&filter); err != nil || resp.Header.Get("Content-Type") != webhookMediaType ||
		!reflect.DeepEqual(filter["include"], []string{"example.com"}) {
		t.Errorf("negotiation: %v %q %v", err, resp.Header.Get("Content-Type"), filter)
	}
	resp.Body.Close()

	steps := []struct {
		name, changes string
		status        int
		log           []string
		records       int
	}{
		{"create", `{"create":[{"dnsName":"kcp.dev.example.com","targets":["198.51.100.10"],"recordType":"A","recordTTL":60},
			{"dnsName":"a-kcp.dev.example.com","targets":["\"heritage=external-dns\""],"recordType":"TXT"}]}`,
			http.StatusNoContent, []string{"publish kcp.dev.example.com 198.51.100.10"}, 2},
		{"update", `{"updateOld":[{"dnsName":"kcp.dev.example.com","targets":["198.51.100.10"],"recordType":"A"}],
			"updateNew":[{"dnsName":"kcp.dev.example.com","targets":["198.51.100.11"],"recordType":"A"}]}`,
			http.StatusNoContent, []string{"publish kcp.dev.example.com 198.51.100.11"}, 2},
		{"delete", `{"delete":[{"dnsName":"kcp.dev.example.com","targets":["198.51.100.11"],"recordType":"A"},
			{"dnsName":"a-kcp.dev.example.com","recordType":"TXT"}]}`,
			http.StatusNoContent, []string{"withdraw kcp.dev.example.com"}, 0},
		{"a CNAME is refused", `{"create":[{"dnsName":"kcp.dev.example.com","targets":["lb.example.net"],"recordType":"CNAME"}]}`,
			http.StatusInternalServerError, nil, 0},
	}
	for _, s := range steps {
		log = nil
		if resp := post("/records", s.changes); resp.StatusCode != s.status {
			t.Errorf("%s: status %d, want %d", s.name, resp.StatusCode, s.status)
		}
		if !reflect.DeepEqual(log, s.log) {
			t.Errorf("%s: did %q, want %q", s.name, log, s.log)
		}
		resp, err := http.Get(srv.URL + "/records")
		if err != nil {
			t.Fatal(err)
		}
		var recs []dnsRecord
		if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil || len(recs) != s.records {
			t.Errorf("%s: records %v (%v), want %d", s.name, recs, err, s.records)
		}
		resp.Body.Close()
	}
	if _, ok := w.published["kcp.dev.example.com"]; ok {
		t.Error("a deleted record is still published")
	}
}
