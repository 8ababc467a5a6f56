package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestDNSWebhook: the node's zone speaks external-dns v0.22.0's webhook
// protocol — negotiation names the zone, changes are applied (an A record
// published, moved, withdrawn; TXT ownership records kept with their labels
// and listed back, address records without), a record it cannot resolve
// (CNAME) is kept without failing the sync, and a withdrawal that fails
// leaves the record listed so that the next sync tries again.
func TestDNSWebhook(t *testing.T) {
	var log []string
	failWithdraw := false
	w := newDNSWebhook("example.com",
		func(_ context.Context, name, ip string) error { log = append(log, "publish "+name+" "+ip); return nil },
		func(_ context.Context, name string) error {
			if failWithdraw {
				return errors.New("kubectl failed")
			}
			log = append(log, "withdraw "+name)
			return nil
		})
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
		failWithdraw  bool
		status        int
		log           []string
		records       string // what GET /records lists: name/type/labels
	}{
		{"create", `{"create":[{"dnsName":"kcp.dev.example.com","targets":["198.51.100.10"],"recordType":"A","recordTTL":60,"labels":{"owner":"e2e"}},
			{"dnsName":"a-kcp.dev.example.com","targets":["\"heritage=external-dns\""],"recordType":"TXT","labels":{"owner":"e2e"}}]}`,
			false, http.StatusNoContent, []string{"publish kcp.dev.example.com 198.51.100.10"},
			"a-kcp.dev.example.com/TXT/map[owner:e2e] kcp.dev.example.com/A/map[]"},
		{"update", `{"updateOld":[{"dnsName":"kcp.dev.example.com","targets":["198.51.100.10"],"recordType":"A"}],
			"updateNew":[{"dnsName":"kcp.dev.example.com","targets":["198.51.100.11"],"recordType":"A"}]}`,
			false, http.StatusNoContent, []string{"publish kcp.dev.example.com 198.51.100.11"},
			"a-kcp.dev.example.com/TXT/map[owner:e2e] kcp.dev.example.com/A/map[]"},
		{"a failed delete stays listed", `{"delete":[{"dnsName":"kcp.dev.example.com","targets":["198.51.100.11"],"recordType":"A"}]}`,
			true, http.StatusInternalServerError, nil,
			"a-kcp.dev.example.com/TXT/map[owner:e2e] kcp.dev.example.com/A/map[]"},
		{"delete", `{"delete":[{"dnsName":"kcp.dev.example.com","targets":["198.51.100.11"],"recordType":"A"},
			{"dnsName":"a-kcp.dev.example.com","recordType":"TXT"}]}`,
			false, http.StatusNoContent, []string{"withdraw kcp.dev.example.com"}, ""},
		{"a CNAME is kept, resolving nowhere", `{"create":[{"dnsName":"kcp.dev.example.com","targets":["lb.example.net"],"recordType":"CNAME"}]}`,
			false, http.StatusNoContent, nil, "kcp.dev.example.com/CNAME/map[]"},
	}
	for _, s := range steps {
		log, failWithdraw = nil, s.failWithdraw
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
		if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
			t.Fatalf("%s: records: %v", s.name, err)
		}
		resp.Body.Close()
		var listed []string
		for _, r := range recs {
			listed = append(listed, fmt.Sprintf("%s/%s/%v", r.DNSName, r.RecordType, map[string]string(r.Labels)))
		}
		if got := strings.Join(listed, " "); got != s.records {
			t.Errorf("%s: records %q, want %q", s.name, got, s.records)
		}
	}
	if resp, err := http.Get(srv.URL + "/other"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown path: %v %v", resp, err)
	}
	if _, ok := w.published["kcp.dev.example.com"]; ok {
		t.Error("a deleted record is still published")
	}
}
