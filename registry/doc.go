// Package registry is rollcall's schema: the etcd key layout, the records stored
// under it, their validation and their JSON encoding (docs/DESIGN.md,
// "Keys"). It is the contract between the agent that writes presence, the DNS
// plugin that serves it and the operator reading it with etcdctl, so no other
// package spells a key or decodes a value by hand.
//
// Layout under a prefix P (default /rollcall):
//
//	P/hosts/<host>/host                 Host     (JSON)
//	P/hosts/<host>/services/<service>   Instance (JSON)
//	P/elections/<service>/<lease-hex>   candidate host name (raw, concurrency.Election)
//	P/maintenance/<host>[/<service>]    Maintenance (JSON; operators write it, hosts cannot)
//
// Writers validate before they write (Validate*, Encode*); readers decode with
// Decode* and skip whatever fails: bad data is never served and never crashes a
// reader. The files:
//
//	keys.go      Keys: the layout under a prefix, spelled and parsed (Parse checks every part)
//	names.go     the one name rule: a lower-case DNS label, with errors that say what to write
//	values.go    the one check of each other value: port numbers, protocols, addresses, CIDRs
//	records.go   Host, Instance, Port and Addrs: validation, bounds, strict JSON decoding
//	health.go    State (passing, warning, critical, draining), the one in-service rule, Maintenance
//	election.go  candidates and the one leader rule: the lowest create revision leads, its revision is the term
//	errors.go    ValueError (a value's problem, for callers that say where it was) and
//	             DecodeError (why a reader skipped a key: the Reason it counts it by)
package registry
