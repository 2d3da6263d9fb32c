// Package inspect reads the rollcall registry for the operator's CLI
// (`rollcall ls` and `rollcall status`; their command lines are in
// cmd/rollcall, and nothing here reads flags). It lists the whole prefix at one etcd
// revision, decodes every key through package registry (docs/DESIGN.md,
// "Keys"), asks etcd how long each lease has left, and renders the result as an
// aligned table or as JSON.
//
// The work is split so that the decisions are pure functions: Build turns the
// listed key-values into a Snapshot (services, instances, hosts, masters,
// skipped keys), and the Render functions turn a Snapshot into output. Load is
// the only part that talks to etcd.
//
// Each instance carries its health as the plugin sees it (docs/DESIGN.md,
// "Health"): its agent's state, the maintenance record that covers it, its
// own or its host's (an ended one counts as absent, so a Snapshot is read
// at a time, Snapshot.ReadAt), whether it is in service, and whether its
// service fails open. `rollcall maint ls` renders the maintenance records.
//
// Like every reader of the registry, inspect never trusts the data: a key or
// value it cannot decode is skipped and reported (key and reason) in
// Snapshot.Skipped, never shown as if it were valid and never a crash.
//
// # JSON output
//
// `rollcall ls -o json` prints an LsView and `rollcall status -o json` a
// StatusView. Their field names are part of rollcall's interface: fields may be
// added, but none is renamed or removed. Addresses are strings, networks are
// keys of an object, leases are hex strings as etcdctl prints them, TTLs are
// whole seconds (-1: the lease has expired or is gone; absent: the key has no
// lease and never expires).
//
// # Files
//
//	load.go      Load: the one read of etcd, every key at one revision and the leases' TTLs
//	snapshot.go  Build: the listed keys, decoded through registry, as a Snapshot
//	render.go    Ls, Status and Maint: tables or JSON documents of a Snapshot
package inspect
