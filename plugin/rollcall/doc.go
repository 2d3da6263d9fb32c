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
//	index.go     one server block's answers per service, rebuilt off the query path: instances in service, fail open
//	view.go      networks and views: which addresses a client gets (pure functions)
//	hostview.go  `hostview`: each registered host address's view, kept up to date off the query path
//	answer.go    each name kind's records for the asked type, rotated, as far as they fit
//	wire.go      packing records straight into DNS wire format, names compressed
//	recorders.go the packed reply through the recorders of prometheus and log: what each would note
//	loader.go    the etcd side: a regwatch.Watcher (list, watch, resume, re-list) decoded into the state, shared per etcd and prefix
//	state.go     the decoded registry: every key validated, bad ones skipped with a reason; maintenance and its expiry
//	setup.go     the Corefile block (parse), start-up and shutdown, the cache refusal
//	metrics.go   the coredns_rollcall_* metrics
//	ready.go     readiness for the ready plugin: the first list is in
//
// The `http` option serves a read-only JSON API, Prometheus service
// discovery and a status page from the same index, off the DNS query path:
//
//	http.go        the option (`http ADDR [CERT KEY [CA]]`) and the server's life: listen, stop, reload
//	httpapi.go     the JSON endpoints, the caller's view, blocking queries (?index=&wait=)
//	httpexplain.go /v1/explain: a query answered by ServeDNS as if it came from another client
//	httpfeed.go    what HTTP follows of the loader: the revision that wakes blocking queries, the recent changes
//	httppage.go    the status page (GET /) from the embedded httpui folder: template, style, script
//	reader.go    Reader: the loader alone, unshared, without a server block (the scale benchmark's simulated DNS readers)
package rollcall
