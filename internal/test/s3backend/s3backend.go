// Package s3backend gives tests an S3 state backend: an in-memory S3
// server (gofakes3) on loopback with a bucket, and the URL and AWS
// settings with which the engine and kcp-tmc use it as a user's s3://
// backend.
package s3backend

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Start serves a bucket until the test ends, sets the AWS credentials and
// region the engine reads from the environment, and returns the backend
// URL as a user of an S3-compatible store writes it. At the bucket's root
// is what the engine leaves in a bucket it has used: .pulumi/meta.yaml of
// the project layout (pulumi v3.274 backend/diy meta.go); under any other
// path the bucket is new.
func Start(t testing.TB) string {
	t.Helper()
	mem := s3mem.New()
	if err := mem.CreateBucket("state"); err != nil {
		t.Fatal(err)
	}
	meta := []byte("version: 1\n")
	if _, err := mem.PutObject("state", ".pulumi/meta.yaml", map[string]string{}, bytes.NewReader(meta), int64(len(meta)), nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(mem).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "kcp-tmc-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "kcp-tmc-test")
	t.Setenv("AWS_REGION", "us-east-1")
	return "s3://state?endpoint=" + srv.URL + "&s3ForcePathStyle=true&region=us-east-1"
}
