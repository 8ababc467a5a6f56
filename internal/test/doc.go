// Package test holds the helpers only tests use — mocktest (the Pulumi
// mocks, with pulumi-tls emulated by crypto/x509), pkitest (the PKI's
// certificates as files), testenv (a project copy for the real engine) and
// backuptest (a seeded S3-compatible backup target). No runtime package
// imports them.
package test
