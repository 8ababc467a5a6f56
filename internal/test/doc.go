// Package test holds the helpers only tests use — mocktest (the Pulumi
// mocks, with pulumi-tls emulated by crypto/x509), pkitest (the PKI's
// certificates as files), testenv (a project copy for the real engine),
// backuptest (a seeded S3-compatible backup target) and esstub (an
// Elasticsearch Bulk API stand-in behind a private CA). No runtime package
// imports them.
package test
