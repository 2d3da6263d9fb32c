// Package testkit starts the real parts rollcall's tests run against: embedded
// etcd (one node or a cluster), CoreDNS from a Corefile string, a systemd user
// manager, and the project's binaries. Every test that needs a server gets it
// here, so no test spells that set-up twice. Everything listens on loopback and
// is stopped by t.Cleanup.
package testkit
