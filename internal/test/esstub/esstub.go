// Package esstub is a stand-in for Elasticsearch's Bulk API, behind TLS
// from a private CA: the judge of the logging tests (tests/fluentbit_test.go,
// tests/nodelogging), whose CA also signs components/logging's test PEM.
package esstub

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// CA issues server certificates.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate, for clients to trust.
	PEM string
}

func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "elasticsearch test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert: cert, key: key, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func (ca *CA) ServerCert(t testing.TB, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Server is Elasticsearch's Bulk API as far as a shipper sees it: it
// checks what Elasticsearch 8 does (the content type, the credentials, the
// index, no mapping type), keeps the documents and answers in
// Elasticsearch 8.16's field order.
type Server struct {
	t                     testing.TB
	user, password, index string
	mu                    sync.Mutex
	docs                  []map[string]any
	requests, refused     int
	failing               bool
	largest               int
}

// New serves TLS with cert on listen until the test ends.
func New(t testing.TB, listen string, cert tls.Certificate, user, password, index string) *Server {
	t.Helper()
	es := &Server{t: t, user: user, password: password, index: index}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: es, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ErrorLog: nil}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return es
}

func esError(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"type": "illegal_argument_exception", "reason": reason}, "status": status})
	_, _ = w.Write(b)
}

func (es *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	es.mu.Lock()
	defer es.mu.Unlock()
	es.requests++
	if r.Method != http.MethodPost || r.URL.Path != "/_bulk" {
		esError(w, http.StatusNotFound, "no handler for "+r.Method+" "+r.URL.Path)
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != es.user || p != es.password {
		esError(w, http.StatusUnauthorized, "unable to authenticate user")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") && !strings.HasPrefix(ct, "application/json") {
		esError(w, http.StatusNotAcceptable, "Content-Type header ["+ct+"] is not supported")
		return
	}
	if es.failing {
		es.refused++
		esError(w, http.StatusServiceUnavailable, "cluster_block_exception")
		return
	}
	var docs []map[string]any
	var items []any
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var action map[string]map[string]any
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			esError(w, http.StatusBadRequest, fmt.Sprintf("Malformed action/metadata line [%d]", line))
			return
		}
		for op, meta := range action {
			if op != "create" && op != "index" {
				esError(w, http.StatusBadRequest, "Unknown action ["+op+"]")
				return
			}
			if _, typed := meta["_type"]; typed {
				esError(w, http.StatusBadRequest, fmt.Sprintf("Action/metadata line [%d] contains an unknown parameter [_type]", line))
				return
			}
			if meta["_index"] != es.index {
				es.t.Errorf("a document for index %v, want %s", meta["_index"], es.index)
			}
			// What Elasticsearch 8 answers per created document.
			items = append(items, map[string]any{op: map[string]any{"_index": meta["_index"], "_id": fmt.Sprintf("%020d", len(es.docs)+len(items)),
				"_version": 1, "result": "created", "_shards": map[string]any{"total": 2, "successful": 1, "failed": 0},
				"_seq_no": len(es.docs) + len(items), "_primary_term": 1, "status": 201}})
		}
		line++
		var doc map[string]any
		if !sc.Scan() || json.Unmarshal(sc.Bytes(), &doc) != nil {
			esError(w, http.StatusBadRequest, fmt.Sprintf("The bulk request must be terminated by a newline [%d]", line))
			return
		}
		docs = append(docs, doc)
	}
	es.docs = append(es.docs, docs...)
	w.Header().Set("Content-Type", "application/json")
	// In Elasticsearch's order (8.16+, BulkResponse.toXContentChunked):
	// errors, took, items. fluent-bit takes a truncated answer for a success
	// only when "errors":false is right before "items".
	list, _ := json.Marshal(items)
	b := []byte(`{"errors":false,"took":1,"items":` + string(list) + `}`)
	es.largest = max(es.largest, len(b))
	_, _ = w.Write(b)
}

// LargestAnswer is the size of the largest bulk answer sent.
func (es *Server) LargestAnswer() int { es.mu.Lock(); defer es.mu.Unlock(); return es.largest }

// CountPrefix is how many documents' msg starts with prefix.
func (es *Server) CountPrefix(prefix string) int {
	return es.countWhere(func(d map[string]any) bool {
		m, ok := d["msg"].(string)
		return ok && strings.HasPrefix(m, prefix)
	})
}

// SetFailing makes every bulk request fail with 503 (v) or not.
func (es *Server) SetFailing(v bool) { es.mu.Lock(); es.failing = v; es.mu.Unlock() }

// Refused is how many bulk requests were refused while failing.
func (es *Server) Refused() int { es.mu.Lock(); defer es.mu.Unlock(); return es.refused }

// Requests is how many requests arrived.
func (es *Server) Requests() int { es.mu.Lock(); defer es.mu.Unlock(); return es.requests }

// Where is every document that matches, in the order they arrived.
func (es *Server) Where(match func(doc map[string]any) bool) []map[string]any {
	es.mu.Lock()
	defer es.mu.Unlock()
	var out []map[string]any
	for _, d := range es.docs {
		if match(d) {
			out = append(out, d)
		}
	}
	return out
}

// countWhere is how many documents match.
func (es *Server) countWhere(match func(doc map[string]any) bool) int { return len(es.Where(match)) }

// Count is how many documents have this msg (a JSON line's field).
func (es *Server) Count(msg string) int {
	return es.countWhere(func(d map[string]any) bool { return d["msg"] == msg })
}

// CountLog is how many documents hold this non-JSON line as log.
func (es *Server) CountLog(line string) int {
	return es.countWhere(func(d map[string]any) bool { return d["log"] == line })
}

// Find is the first document with this msg; nil if none.
func (es *Server) Find(msg string) map[string]any {
	es.mu.Lock()
	defer es.mu.Unlock()
	for _, d := range es.docs {
		if d["msg"] == msg {
			return d
		}
	}
	return nil
}

func (es *Server) String() string {
	es.mu.Lock()
	defer es.mu.Unlock()
	var msgs []string
	for _, d := range es.docs {
		if m, ok := d["msg"].(string); ok {
			msgs = append(msgs, m)
		} else {
			msgs = append(msgs, fmt.Sprintf("log=%v", d["log"]))
		}
	}
	if len(msgs) > 20 {
		msgs = append([]string{fmt.Sprintf("(%d more)", len(msgs)-20)}, msgs[len(msgs)-20:]...)
	}
	return fmt.Sprintf("Elasticsearch: %d requests (%d refused), documents %q", es.requests, es.refused, msgs)
}
