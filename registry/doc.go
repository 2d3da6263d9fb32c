// Package registry is rollcall's schema: the etcd key layout, the records stored
// under it, their validation and their JSON encoding (shared/DESIGN.md, "etcd
// keys"). It is the contract between the agent that writes presence, the DNS
// plugin that serves it and the operator reading it with etcdctl, so no other
// package spells a key or decodes a value by hand.
//
// Layout under a prefix P (default /rollcall):
//
//	P/hosts/<host>/host                 Host     (JSON)
//	P/hosts/<host>/services/<service>   Instance (JSON)
//	P/elections/<service>/<lease-hex>   candidate host name (raw, concurrency.Election)
//
// Writers validate before they write (Validate*, Encode*); readers decode with
// Decode* and skip whatever fails: bad data is never served and never crashes a
// reader.
package registry
