// Package resolvers tests rollcall through the recursive resolvers clients
// really use: unbound (a plain stub zone, and its subnetcache module for EDNS
// Client Subnet), dnsmasq (a forwarded domain, and --add-subnet) and BIND's
// named (a forward zone), each run from Debian's packages in front of
// bin/coredns as a real process. A name rollcall serves is only as good as
// what reaches a program through such a cache: a CNAME beside other data, an
// empty non-terminal answered NXDOMAIN, an empty ANY answer or an RRset too
// large for BIND breaks there while rollcall's own answer looks fine.
//
//   - TestThroughResolvers, through each resolver with github.com/miekg/dns,
//     Go's resolver (net.Resolver with PreferGo) and glibc's (getent): ANY
//     per RFC 8482; NODATA for the empty non-terminal `_tcp.<service>`; a
//     service's and an instance's A and AAAA; SRV whose targets resolve;
//     `<service>-master` A without a CNAME, then its TXT "host=" "term="
//     with the cache warm, its AAAA and SRV; NXDOMAIN and NODATA with the
//     SOA; a service too large for UDP: TC, then the whole set over TCP.
//   - TestECSNoLeak: with `ecs`, CoreDNS's answer is the view of the whole
//     ECS source prefix and its scope one the answer holds for; through
//     unbound's subnet cache and dnsmasq's --add-subnet, which cut client
//     subnets to a /24 or /56 straddling an overlay's edge, no overlay
//     address reaches a client off that overlay.
//   - TestBINDMaxRecordsPerType: BIND (9.18.28 and later) answers SERVFAIL
//     for more than 100 records of a type; with `max_answers 100` it
//     answers, each answer a random subset of at most 100 instances.
//
// Every server listens on 127.0.0.1 (glibc's relay on port 53 of another
// 127.0.0.0/8 address); the resolvers forward everything to CoreDNS, so
// nothing is sent off loopback, and the machine's resolver configuration is
// never touched (getent runs in a private mount namespace). A test whose
// resolver binary is missing skips, naming it: `make test` installs them as
// root. The tests live in *_test.go files; this file only documents them.
package resolvers
