// Package rollcall is the CoreDNS plugin that serves rollcall's registry
// (shared/DESIGN.md, "DNS names", "Views", "Serving"): services, their
// instances, shards and elected masters, with the addresses each client's
// view should use.
//
// The query path starts at Rollcall.ServeDNS (rollcall.go): parse the name
// (parse.go), read the in-memory index (index.go), pick the client's view
// (view.go), build the response (answer.go). etcd is read only by the loader
// (loader.go): one list, then one watch, shared by every server block with
// the same etcd and prefix; it applies events to its decoded state
// (state.go) and rebuilds the answers of the services each event touched.
package rollcall
