// Package security holds rollcall's end-to-end security tests (issue #7):
// mTLS between every component and etcd, with plaintext and foreign
// certificates refused and each refusal explained; per-host RBAC
// (test/rbac, deploy/rbac.sh) confining an agent to its own subtree and
// the agent reporting a refused write; view isolation (docs/DESIGN.md,
// "Views": a client never receives an overlay address of a network it is not
// on) swept over many client addresses and ECS options; and the DNS server
// refusing zone transfers and names outside its zones (no open resolver).
//
// Everything is real: embedded etcd, CoreDNS from a Corefile queried over
// UDP and TCP, the servicereg and rollcall binaries, a private systemd user
// manager. The tests live in *_test.go files; this file only documents them.
package security
