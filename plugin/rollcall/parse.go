package rollcall

// nameKind is the shape of a query name relative to its zone Z. Which record
// it names is settled against the index (service or master, host or shard).
type nameKind uint8

// The shapes of a name below a zone Z:
//
//	Z                          apex: SOA, NS
//	<l>.Z                      service <l>; else, for l = <s>-master, master of <s>
//	<l>.<s>.Z                  instance of <s> on host <l>; else shard <l> of <s>
//	_<port>._<proto>.<s>.Z     SRV of a named port (proto tcp or udp)
//
// Anything else (more labels, escapes, empty labels) cannot exist: NXDOMAIN.
const (
	nameNone nameKind = iota
	nameApex
	nameService  // <l>.Z: a service, or the master of one
	nameInstance // <l>.<s>.Z: an instance's host, or a shard
	namePort
)

// qname is a parsed query name. The labels are slices of the caller's
// lower-cased buffer, so parsing does not allocate.
type qname struct {
	kind nameKind
	// label is the first label (nameService, nameInstance), or
	// "_<port>._<proto>" (namePort); svc is the service's label below it.
	label, svc []byte
}

// maxName is the longest wire-format name; longer names cannot be asked.
const maxName = 255

// parseQuery lower-cases rel (the part of a query name before its zone) into
// buf and parses it. A name too long for buf cannot exist.
func parseQuery(buf []byte, rel string) qname {
	if len(rel) > len(buf) {
		return qname{}
	}
	return parseName(lowerInto(buf, rel))
}

// lowerInto copies s into buf (at least as long) in lower case.
func lowerInto(buf []byte, s string) []byte {
	b := buf[:len(s)]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return b
}

// parseName parses rel, the lower-cased labels of a query name before its
// zone, each followed by its dot ("" for the apex, "web." for a service).
func parseName(rel []byte) qname {
	if len(rel) == 0 {
		return qname{kind: nameApex}
	}
	if rel[len(rel)-1] != '.' {
		return qname{}
	}
	var labels [3][]byte
	n, start := 0, 0
	for i := 0; i < len(rel); i++ {
		switch rel[i] {
		case '\\':
			// Escaped bytes never occur in valid names: nothing to find.
			return qname{}
		case '.':
			if i == start || n == len(labels) {
				return qname{}
			}
			labels[n] = rel[start:i]
			n++
			start = i + 1
		}
	}
	switch n {
	case 1:
		return qname{kind: nameService, label: labels[0]}
	case 2:
		return qname{kind: nameInstance, label: labels[0], svc: labels[1]}
	case 3:
		port, proto := labels[0], labels[1]
		if len(port) < 2 || port[0] != '_' || !isProto(proto) {
			return qname{}
		}
		// "_<port>._<proto>" is contiguous in rel: one map key.
		return qname{kind: namePort, label: rel[:len(port)+1+len(proto)], svc: labels[2]}
	}
	return qname{}
}

func isProto(b []byte) bool {
	return string(b) == "_tcp" || string(b) == "_udp"
}

// masterBase returns s when label is "<s>-master", else nil.
func masterBase(label []byte) []byte {
	const suffix = "-master"
	if len(label) <= len(suffix) || string(label[len(label)-len(suffix):]) != suffix {
		return nil
	}
	return label[:len(label)-len(suffix)]
}

// zoneOf returns the index of the zone qname is in (zones are lower-case and
// fully qualified; the longest match wins) and the length of the part before
// it, or -1. It compares case-insensitively without allocating.
func zoneOf(zones []string, name string) (int, int) {
	best, bestLen := -1, -1
	for i, z := range zones {
		if len(z) > len(name) || len(z) <= bestLen {
			continue
		}
		cut := len(name) - len(z)
		if z != "." && cut > 0 && (name[cut-1] != '.' || escaped(name, cut-1)) {
			// Not at a label boundary: "web\.infra.example.com." is
			// the label "web.infra" under example.com.
			continue
		}
		if !equalFold(name[cut:], z) {
			continue
		}
		best, bestLen = i, len(z)
	}
	if best < 0 {
		return -1, 0
	}
	if zones[best] == "." {
		// The root's labels keep their dots: "web." is "web." before ".".
		if name == "." {
			return best, 0
		}
		return best, len(name)
	}
	return best, len(name) - len(zones[best])
}

// escaped reports whether the byte at i of a presentation-format name is
// escaped: preceded by an odd run of backslashes.
func escaped(name string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && name[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// equalFold compares an ASCII name with a lower-case one.
func equalFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
