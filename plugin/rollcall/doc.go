// Package rollcall is the CoreDNS plugin that serves rollcall's registry
// (docs/DESIGN.md, "Names and DNS rules", "Views", "Serving and freshness"):
// services, their instances, shards and elected masters, with the addresses
// each client's view should use.
//
// The query path starts at Rollcall.ServeDNS (rollcall.go) and never calls
// etcd. etcd is read only by the loader: one list, then one watch, shared by
// every server block with the same etcd and prefix; it applies events to its
// decoded state and has each block rebuild the answers of the services an
// event touched. The files:
//
//	rollcall.go  the handler: ServeDNS, the client's view, writing the packed reply
//	parse.go     the name grammar: query name -> zone and one of the name shapes
//	index.go     one server block's answers per service, rebuilt off the query path
//	view.go      networks and views: which addresses a client gets (pure functions)
//	answer.go    each name kind's records for the asked type, rotated, as far as they fit
//	wire.go      packing records straight into DNS wire format, names compressed
//	recorders.go the packed reply through the recorders of prometheus and log: what each would note
//	loader.go    the etcd side: a regwatch.Watcher (list, watch, resume, re-list) decoded into the state, shared per etcd and prefix
//	state.go     the decoded registry: every key validated, bad ones skipped with a reason
//	setup.go     the Corefile block (parse), start-up and shutdown, the cache refusal
//	metrics.go   the coredns_rollcall_* metrics
//	ready.go     readiness for the ready plugin: the first list is in
package rollcall
