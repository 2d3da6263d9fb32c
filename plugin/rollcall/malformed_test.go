package rollcall_test

// Issue #7, bad input: malformed keys and values written to a real etcd next
// to good data, served by a real CoreDNS. Every bad key must be skipped and
// counted by reason, never served, never a crash, and must not disturb the
// good data around it. Each case is run twice: written before CoreDNS starts
// (the first list reads it) and written while it runs (the watch delivers it).

import (
	"bufio"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// The reasons of coredns_rollcall_decode_errors_total (plugin/rollcall/README.md).
const (
	reasonKey       = "key"
	reasonTooLarge  = "too_large"
	reasonRecord    = "record"
	reasonMismatch  = "mismatch"
	reasonCandidate = "candidate"
)

const malZone = "infra.example.com."

// malKV is one etcd write.
type malKV struct{ key, value string }

// malformedCase is one bad key or value. Bad instances live on hosts named
// bad<N> with addresses 203.0.113.<N> and 2001:db8:bad::<N>, so that any of
// them reaching an answer is easy to spot (see leaked).
type malformedCase struct {
	name   string // what is wrong with it
	key    string
	value  string
	reason string // the decode_errors_total reason it must be counted under
	// over is a good value written to key first: the bad value replaces it,
	// and what it served must disappear. overServed is a name (relative to
	// the zone) that answers A while the good value is in.
	over, overServed string
	before, after    []malKV  // good writes around the bad one
	nx               []string // names (relative to the zone) that must be NXDOMAIN
	nodata           []string // names that must exist without A or AAAA records
}

func malInstKey(host, svc string) string { return "/rollcall/hosts/" + host + "/services/" + svc }
func malHostKey(host string) string      { return "/rollcall/hosts/" + host + "/host" }

// malInst is an instance record of web on host with the given fields after the
// service and host.
func malInst(host string, fields ...string) string {
	return `{"service":"web","host":"` + host + `"` + malFields(fields) + `}`
}

func malFields(fields []string) string {
	if len(fields) == 0 {
		return ""
	}
	return "," + strings.Join(fields, ",")
}

// badAddrs are the addresses of host bad<n>, as an "addrs" field.
func badAddrs(n int) string {
	return fmt.Sprintf(`"addrs":{"public":["203.0.113.%d","2001:db8:bad::%d"]}`, n, n)
}

const malHTTPPort = `"ports":[{"name":"http","port":8080,"proto":"tcp"}]`

func malPorts(p string) string { return `"ports":[` + p + `]` }

// goodInst is a well-formed instance of bad<n>: what the case breaks.
func goodInst(n int) string { return malInst(fmt.Sprintf("bad%02d", n), badAddrs(n), malHTTPPort) }

func malNested(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }

func manyPorts(n int) string {
	var ps []string
	for i := 0; i < n; i++ {
		ps = append(ps, fmt.Sprintf(`{"name":"p%d","port":%d,"proto":"tcp"}`, i, 1000+i))
	}
	return malPorts(strings.Join(ps, ","))
}

func manyAddrs(n int) string {
	var as []string
	for i := 0; i < n; i++ {
		as = append(as, fmt.Sprintf(`"203.0.113.%d"`, i+1))
	}
	return `"addrs":{"public":[` + strings.Join(as, ",") + `]}`
}

func manyNetworks(n int) string {
	var ns []string
	for i := 0; i < n; i++ {
		ns = append(ns, fmt.Sprintf(`"n%d":["203.0.113.%d"]`, i, i+1))
	}
	return `"addrs":{` + strings.Join(ns, ",") + `}`
}

// padTo pads a JSON object with an unknown field to exactly size bytes.
func padTo(obj string, size int) string {
	head := strings.TrimSuffix(obj, "}") + `,"pad":"`
	return head + strings.Repeat("x", size-len(head)-2) + `"}`
}

// bad<n>.web is the name an accepted bad instance would answer.
func nxWeb(n int) []string { return []string{fmt.Sprintf("bad%02d.web", n)} }

// malformedCases is every kind of bad key or value, named after what is wrong
// with it, and the reason the plugin counts it under.
//
// The registry accepts some values that are not quite what a writer should
// produce; they are served, so they are not here:
//
//   - multicast, broadcast and loopback addresses: they are valid addresses;
//   - duplicate JSON keys: the last one wins (a case below has the harmful
//     order);
//   - field names in another case ("SERVICE"): encoding/json matches them;
//   - nesting within the decoder's depth limit inside an unknown field, and a
//     value of exactly registry.MaxValueSize bytes (goodKVs holds both).
func malformedCases() []malformedCase {
	label64 := strings.Repeat("a", 64)
	return []malformedCase{
		// Values that are not a JSON object.
		{name: "not JSON", key: malInstKey("bad01", "web"), value: "not json", reason: reasonRecord, nx: nxWeb(1)},
		{name: "empty value", key: malInstKey("bad02", "web"), value: "", reason: reasonRecord, nx: nxWeb(2)},
		{name: "white space only", key: malInstKey("bad03", "web"), value: " \n\t ", reason: reasonRecord, nx: nxWeb(3)},
		{name: "JSON array of records", key: malInstKey("bad04", "web"), value: "[" + goodInst(4) + "]", reason: reasonRecord, nx: nxWeb(4)},
		{name: "JSON string", key: malInstKey("bad05", "web"), value: `"web"`, reason: reasonRecord, nx: nxWeb(5)},
		{name: "JSON number", key: malInstKey("bad06", "web"), value: `42`, reason: reasonRecord, nx: nxWeb(6)},
		{name: "JSON null", key: malInstKey("bad07", "web"), value: `null`, reason: reasonRecord, nx: nxWeb(7)},
		{name: "JSON boolean", key: malInstKey("bad08", "web"), value: `true`, reason: reasonRecord, nx: nxWeb(8)},
		{name: "truncated JSON", key: malInstKey("bad09", "web"), value: goodInst(9)[:40], reason: reasonRecord, nx: nxWeb(9)},
		{name: "second JSON value after the record", key: malInstKey("bad10", "web"), value: goodInst(10) + ` {}`, reason: reasonRecord, nx: nxWeb(10)},
		{name: "stray closing brace after the record", key: malInstKey("bad91", "web"), value: goodInst(91) + `}`, reason: reasonRecord, nx: nxWeb(91)},
		{name: "stray closing bracket after the record", key: malInstKey("bad92", "web"), value: goodInst(92) + `]`, reason: reasonRecord, nx: nxWeb(92)},
		{name: "byte order mark before the record", key: malInstKey("bad11", "web"), value: "\xef\xbb\xbf" + goodInst(11), reason: reasonRecord, nx: nxWeb(11)},
		{name: "nesting deeper than the JSON decoder allows", key: malInstKey("bad12", "web"), value: malInst("bad12", badAddrs(12), `"x":`+malNested(10001)), reason: reasonRecord, nx: nxWeb(12)},
		{name: "record without service field", key: malInstKey("bad13", "web"), value: `{"host":"bad13",` + badAddrs(13) + `}`, reason: reasonRecord, nx: nxWeb(13)},

		// Names inside the record.
		{name: "truncated UTF-8 in shard", key: malInstKey("bad14", "web"), value: malInst("bad14", `"shard":"s`+"\xe2\x82"+`"`, badAddrs(14)), reason: reasonRecord, nx: nxWeb(14)},
		{name: "NUL byte in host field", key: malInstKey("bad15", "web"), value: `{"service":"web","host":"bad15\u0000",` + badAddrs(15) + `}`, reason: reasonRecord, nx: nxWeb(15)},
		{name: "shard not a DNS label", key: malInstKey("bad16", "web"), value: malInst("bad16", `"shard":"Shard_1"`, badAddrs(16)), reason: reasonRecord, nx: append(nxWeb(16), "shard_1.web")},
		{name: "shard of 64 characters", key: malInstKey("bad17", "web"), value: malInst("bad17", `"shard":"`+label64+`"`, badAddrs(17)), reason: reasonRecord, nx: nxWeb(17)},

		// Ports.
		{name: "ports not a list", key: malInstKey("bad18", "web"), value: malInst("bad18", badAddrs(18), `"ports":"http"`), reason: reasonRecord, nx: nxWeb(18)},
		{name: "port number as a string", key: malInstKey("bad19", "web"), value: malInst("bad19", badAddrs(19), malPorts(`{"name":"http","port":"8080","proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(19)},
		{name: "port number fractional", key: malInstKey("bad20", "web"), value: malInst("bad20", badAddrs(20), malPorts(`{"name":"http","port":80.5,"proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(20)},
		{name: "port number in exponent form", key: malInstKey("bad21", "web"), value: malInst("bad21", badAddrs(21), malPorts(`{"name":"http","port":8e3,"proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(21)},
		{name: "port 0", key: malInstKey("bad22", "web"), value: malInst("bad22", badAddrs(22), malPorts(`{"name":"http","port":0,"proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(22)},
		{name: "port 70000", key: malInstKey("bad23", "web"), value: malInst("bad23", badAddrs(23), malPorts(`{"name":"http","port":70000,"proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(23)},
		{name: "port negative", key: malInstKey("bad24", "web"), value: malInst("bad24", badAddrs(24), malPorts(`{"name":"http","port":-8080,"proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(24)},
		{name: "port number beyond 64 bits", key: malInstKey("bad25", "web"), value: malInst("bad25", badAddrs(25), malPorts(`{"name":"http","port":99999999999999999999,"proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(25)},
		{name: "proto sctp", key: malInstKey("bad26", "web"), value: malInst("bad26", badAddrs(26), malPorts(`{"name":"http","port":8080,"proto":"sctp"}`)), reason: reasonRecord, nx: nxWeb(26)},
		{name: "proto upper-case TCP", key: malInstKey("bad27", "web"), value: malInst("bad27", badAddrs(27), malPorts(`{"name":"http","port":8080,"proto":"TCP"}`)), reason: reasonRecord, nx: nxWeb(27)},
		{name: "port name not a DNS label", key: malInstKey("bad28", "web"), value: malInst("bad28", badAddrs(28), malPorts(`{"name":"Bad_Port","port":8080,"proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(28)},
		{name: "port name with underscore prefix", key: malInstKey("bad29", "web"), value: malInst("bad29", badAddrs(29), malPorts(`{"name":"_http","port":8080,"proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(29)},
		{name: "same port name and proto twice", key: malInstKey("bad30", "web"), value: malInst("bad30", badAddrs(30), malPorts(`{"name":"http","port":8080,"proto":"tcp"},{"name":"http","port":8081,"proto":"tcp"}`)), reason: reasonRecord, nx: nxWeb(30)},
		{name: "more ports than allowed", key: malInstKey("bad31", "web"), value: malInst("bad31", badAddrs(31), manyPorts(registry.MaxPortsPerEntry+1)), reason: reasonRecord, nx: nxWeb(31)},

		// Addresses and networks.
		{name: "addrs a list, not an object", key: malInstKey("bad32", "web"), value: malInst("bad32", `"addrs":["203.0.113.32"]`), reason: reasonRecord, nx: nxWeb(32)},
		{name: "network addresses a string, not a list", key: malInstKey("bad33", "web"), value: malInst("bad33", `"addrs":{"public":"203.0.113.33"}`), reason: reasonRecord, nx: nxWeb(33)},
		{name: "network name not a DNS label", key: malInstKey("bad34", "web"), value: malInst("bad34", `"addrs":{"public":["203.0.113.34"],"Bad_Net":["203.0.113.134"]}`), reason: reasonRecord, nx: nxWeb(34)},
		{name: "network name empty", key: malInstKey("bad35", "web"), value: malInst("bad35", `"addrs":{"public":["203.0.113.35"],"":["203.0.113.135"]}`), reason: reasonRecord, nx: nxWeb(35)},
		{name: "address a number", key: malInstKey("bad36", "web"), value: malInst("bad36", `"addrs":{"public":[3405803812]}`), reason: reasonRecord, nx: nxWeb(36)},
		{name: "invalid IPv4 300.1.1.1", key: malInstKey("bad37", "web"), value: malInst("bad37", `"addrs":{"public":["203.0.113.37","300.1.1.1"]}`), reason: reasonRecord, nx: nxWeb(37)},
		{name: "IPv4 with a leading zero", key: malInstKey("bad38", "web"), value: malInst("bad38", `"addrs":{"public":["203.0.113.038"]}`), reason: reasonRecord, nx: nxWeb(38)},
		{name: "IPv4 with a prefix length", key: malInstKey("bad39", "web"), value: malInst("bad39", `"addrs":{"public":["203.0.113.39/24"]}`), reason: reasonRecord, nx: nxWeb(39)},
		{name: "invalid IPv6", key: malInstKey("bad40", "web"), value: malInst("bad40", `"addrs":{"public":["203.0.113.40","2001:db8:bad::g"]}`), reason: reasonRecord, nx: nxWeb(40)},
		{name: "zoned IPv6", key: malInstKey("bad41", "web"), value: malInst("bad41", `"addrs":{"public":["203.0.113.41","fe80::41%eth0"]}`), reason: reasonRecord, nx: nxWeb(41)},
		{name: "unspecified IPv4 0.0.0.0", key: malInstKey("bad42", "web"), value: malInst("bad42", `"addrs":{"public":["203.0.113.42","0.0.0.0"]}`), reason: reasonRecord, nx: nxWeb(42)},
		{name: "unspecified IPv6 ::", key: malInstKey("bad43", "web"), value: malInst("bad43", `"addrs":{"public":["203.0.113.43","::"]}`), reason: reasonRecord, nx: nxWeb(43)},
		{name: "IPv4-mapped IPv6", key: malInstKey("bad44", "web"), value: malInst("bad44", `"addrs":{"public":["::ffff:203.0.113.44"]}`), reason: reasonRecord, nx: nxWeb(44)},
		{name: "empty address", key: malInstKey("bad45", "web"), value: malInst("bad45", `"addrs":{"public":["203.0.113.45",""]}`), reason: reasonRecord, nx: nxWeb(45)},
		{name: "more addresses on a network than allowed", key: malInstKey("bad46", "web"), value: malInst("bad46", manyAddrs(registry.MaxAddrsPerNet+1)), reason: reasonRecord, nx: nxWeb(46)},
		{name: "more networks than allowed", key: malInstKey("bad47", "web"), value: malInst("bad47", manyNetworks(registry.MaxNetworks+1)), reason: reasonRecord, nx: nxWeb(47)},

		// Records naming another key.
		{name: "instance naming another service", key: malInstKey("bad48", "web"), value: `{"service":"evil","host":"bad48",` + badAddrs(48) + `}`,
			reason: reasonMismatch, nx: []string{"bad48.web", "bad48.evil", "evil"}},
		{name: "instance naming another host", key: malInstKey("bad49", "web"), value: malInst("g2", `"addrs":{"public":["203.0.113.49"]}`),
			reason: reasonMismatch, nx: nxWeb(49)},
		{name: "duplicate JSON key, the last naming another host", key: malInstKey("bad50", "web"), value: `{"service":"web","host":"bad50","host":"g1",` + badAddrs(50) + `}`,
			reason: reasonMismatch, nx: nxWeb(50)},
		{name: "host record naming another host", key: malHostKey("bad51"), value: `{"name":"g1","addrs":{"public":["203.0.113.51"]}}`,
			reason: reasonMismatch, before: []malKV{{malInstKey("bad51", "web"), malInst("bad51")}}, nodata: []string{"bad51.web"}},

		// Host records.
		{name: "host record addrs of the wrong type", key: malHostKey("bad52"), value: `{"name":"bad52","addrs":{"public":"203.0.113.52"}}`,
			reason: reasonRecord, before: []malKV{{malInstKey("bad52", "web"), malInst("bad52")}}, nodata: []string{"bad52.web"}},
		{name: "host record name a number", key: malHostKey("bad53"), value: `{"name":53,"addrs":{"public":["203.0.113.53"]}}`,
			reason: reasonRecord, before: []malKV{{malInstKey("bad53", "web"), malInst("bad53")}}, nodata: []string{"bad53.web"}},
		{name: "host record with a zoned address", key: malHostKey("bad54"), value: `{"name":"bad54","addrs":{"public":["203.0.113.54","fe80::54%lo"]}}`,
			reason: reasonRecord, before: []malKV{{malInstKey("bad54", "web"), malInst("bad54")}}, nodata: []string{"bad54.web"}},

		// Size.
		{name: "value over 64 KiB", key: malInstKey("bad55", "web"), value: padTo(goodInst(55), registry.MaxValueSize+1), reason: reasonTooLarge, nx: nxWeb(55)},
		{name: "value over 64 KiB, not JSON either", key: malInstKey("bad56", "web"), value: strings.Repeat("\xff", 100<<10), reason: reasonTooLarge, nx: nxWeb(56)},
		{name: "host record over 64 KiB", key: malHostKey("bad57"), value: padTo(`{"name":"bad57","addrs":{"public":["203.0.113.57"]}}`, registry.MaxValueSize+1),
			reason: reasonTooLarge, before: []malKV{{malInstKey("bad57", "web"), malInst("bad57")}}, nodata: []string{"bad57.web"}},

		// A bad value over a good one: the good one must disappear.
		{name: "invalid address written over a good instance", key: malInstKey("bad58", "web"), over: goodInst(58), overServed: "bad58.web",
			value: malInst("bad58", `"addrs":{"public":["not-an-ip"]}`), reason: reasonRecord, nx: nxWeb(58)},
		{name: "not JSON written over a good host record", key: malHostKey("bad59"), over: `{"name":"bad59","addrs":{"public":["203.0.113.59"]}}`, overServed: "bad59.web",
			value: "garbage", reason: reasonRecord, before: []malKV{{malInstKey("bad59", "web"), malInst("bad59")}}, nodata: []string{"bad59.web"}},
		{name: "instance naming another host written over a good one", key: malInstKey("bad60", "web"), over: goodInst(60), overServed: "bad60.web",
			value: malInst("g1", badAddrs(60)), reason: reasonMismatch, nx: nxWeb(60)},

		// Keys.
		{name: "host label upper-case", key: malInstKey("BAD61", "web"), value: malInst("BAD61", badAddrs(61)), reason: reasonKey, nx: nxWeb(61)},
		{name: "service label upper-case", key: malInstKey("bad62", "Web"), value: `{"service":"Web","host":"bad62",` + badAddrs(62) + `}`, reason: reasonKey, nx: nxWeb(62)},
		{name: "host record key upper-case", key: malHostKey("BAD63"), value: `{"name":"BAD63","addrs":{"public":["203.0.113.63"]}}`, reason: reasonKey},
		{name: "host label with underscore", key: malInstKey("bad_64", "web"), value: malInst("bad_64", badAddrs(64)), reason: reasonKey, nx: []string{"bad_64.web"}},
		{name: "host label starting with a hyphen", key: malInstKey("-bad65", "web"), value: malInst("-bad65", badAddrs(65)), reason: reasonKey, nx: []string{"-bad65.web"}},
		{name: "host label of 64 characters", key: malInstKey("bad66"+label64[5:], "web"), value: malInst("bad66"+label64[5:], badAddrs(66)), reason: reasonKey},
		{name: "invalid UTF-8 in key", key: malInstKey("bad\xff67", "web"), value: malInst("bad\xff67", badAddrs(67)), reason: reasonKey},
		{name: "empty host label", key: malInstKey("", "web"), value: malInst("", badAddrs(68)), reason: reasonKey},
		{name: "key too shallow: hosts/<host>", key: "/rollcall/hosts/bad69", value: `{"name":"bad69","addrs":{"public":["203.0.113.69"]}}`, reason: reasonKey},
		{name: "key too shallow: hosts/<host>/services", key: "/rollcall/hosts/bad70/services", value: goodInst(70), reason: reasonKey, nx: nxWeb(70)},
		{name: "key too deep: below an instance", key: malInstKey("bad71", "web") + "/extra", value: goodInst(71), reason: reasonKey, nx: nxWeb(71)},
		{name: "trailing slash after an instance", key: malInstKey("bad72", "web") + "/", value: goodInst(72), reason: reasonKey, nx: nxWeb(72)},
		{name: "unknown part below a host", key: "/rollcall/hosts/bad73/hosted", value: `{"name":"bad73","addrs":{"public":["203.0.113.73"]}}`, reason: reasonKey},
		{name: "unknown folder under the prefix", key: "/rollcall/people/bad74", value: goodInst(74), reason: reasonKey},
		{name: "the prefix folder itself", key: "/rollcall/", value: goodInst(75), reason: reasonKey},

		// Election keys and values.
		{name: "election key without a candidate", key: "/rollcall/elections/web", value: "bad76", reason: reasonKey},
		{name: "election lease not hex", key: "/rollcall/elections/web/zz", value: "g2", reason: reasonKey},
		{name: "election lease zero", key: "/rollcall/elections/web/0", value: "g2", reason: reasonKey},
		{name: "election lease negative", key: "/rollcall/elections/web/-1", value: "g2", reason: reasonKey},
		{name: "election lease of 17 hex digits", key: "/rollcall/elections/web/00000000000000001", value: "g2", reason: reasonKey},
		{name: "election service upper-case", key: "/rollcall/elections/Web/5", value: "g2", reason: reasonKey},
		{name: "election key too deep", key: "/rollcall/elections/web/5/x", value: "g2", reason: reasonKey},
		{name: "candidate not a host name", key: "/rollcall/elections/web/a1", value: "Not A Host", reason: reasonCandidate},
		{name: "candidate empty", key: "/rollcall/elections/web/a2", value: "", reason: reasonCandidate},
		{name: "candidate longer than a label", key: "/rollcall/elections/web/a3", value: label64, reason: reasonCandidate},
		{name: "candidate as JSON", key: "/rollcall/elections/web/a4", value: `{"host":"g2"}`, reason: reasonCandidate},
		{name: "candidate with a trailing newline", key: "/rollcall/elections/web/a5", value: "g2\n", reason: reasonCandidate},
		// A malformed leading candidate holds its place: the good candidate
		// after it is not the leader, so elx has no master.
		{name: "malformed leading candidate", key: "/rollcall/elections/elx/b1", value: "G1!", reason: reasonCandidate,
			before: []malKV{{malInstKey("g1", "elx"), `{"service":"elx","host":"g1"}`}},
			after:  []malKV{{"/rollcall/elections/elx/b2", "g1"}},
			nx:     []string{"elx-master"}},

		// Health: an instance's state, since and reason.
		{name: "state unknown", key: malInstKey("bad77", "web"), value: malInst("bad77", badAddrs(77), `"state":"sick"`), reason: reasonRecord, nx: nxWeb(77)},
		{name: "state upper-case", key: malInstKey("bad78", "web"), value: malInst("bad78", badAddrs(78), `"state":"PASSING"`), reason: reasonRecord, nx: nxWeb(78)},
		{name: "state a number", key: malInstKey("bad79", "web"), value: malInst("bad79", badAddrs(79), `"state":1`), reason: reasonRecord, nx: nxWeb(79)},
		{name: "state maintenance, which only operators set", key: malInstKey("bad80", "web"), value: malInst("bad80", badAddrs(80), `"state":"maintenance"`), reason: reasonRecord, nx: nxWeb(80)},
		{name: "reason on a passing instance", key: malInstKey("bad81", "web"), value: malInst("bad81", badAddrs(81), `"state":"passing","reason":"x"`), reason: reasonRecord, nx: nxWeb(81)},
		{name: "since negative", key: malInstKey("bad82", "web"), value: malInst("bad82", badAddrs(82), `"state":"critical","since":-1`), reason: reasonRecord, nx: nxWeb(82)},
		{name: "reason longer than allowed", key: malInstKey("bad83", "web"), value: malInst("bad83", badAddrs(83), `"state":"critical","reason":"`+strings.Repeat("r", registry.MaxReasonLen+1)+`"`), reason: reasonRecord, nx: nxWeb(83)},
		{name: "reason with a control character", key: malInstKey("bad84", "web"), value: malInst("bad84", badAddrs(84), `"state":"critical","reason":"a\u0007b"`), reason: reasonRecord, nx: nxWeb(84)},

		// Maintenance: garbage takes nothing out of service, so g1 and g2
		// stay in every good answer (checkGood).
		{name: "maintenance not JSON", key: "/rollcall/maintenance/g1", value: "not json", reason: reasonRecord},
		{name: "maintenance without a reason", key: "/rollcall/maintenance/g2", value: `{"who":"ops"}`, reason: reasonRecord},
		{name: "maintenance until negative", key: "/rollcall/maintenance/g1/web", value: `{"reason":"x","until":-5}`, reason: reasonRecord},
		{name: "maintenance until a string", key: "/rollcall/maintenance/g2/web", value: `{"reason":"x","until":"tomorrow"}`, reason: reasonRecord},
		{name: "maintenance reason on two lines", key: "/rollcall/maintenance/g1/api", value: `{"reason":"a\nb"}`, reason: reasonRecord},
		{name: "maintenance over 64 KiB", key: "/rollcall/maintenance/g2/api", value: padTo(`{"reason":"x"}`, registry.MaxValueSize+1), reason: reasonTooLarge},
		{name: "maintenance host upper-case", key: "/rollcall/maintenance/G1", value: `{"reason":"x"}`, reason: reasonKey},
		{name: "maintenance key too deep", key: "/rollcall/maintenance/g1/web/x", value: `{"reason":"x"}`, reason: reasonKey},
		{name: "maintenance folder itself", key: "/rollcall/maintenance/", value: `{"reason":"x"}`, reason: reasonKey},
	}
}

// goodKVs is the good data the bad data sits next to, and what it serves.
func goodKVs() []malKV {
	return []malKV{
		{malHostKey("g1"), `{"name":"g1","addrs":{"public":["192.0.2.1","2001:db8::1"]}}`},
		{malHostKey("g2"), `{"name":"g2","addrs":{"public":["192.0.2.2"]}}`},
		{malInstKey("g1", "web"), `{"service":"web","host":"g1","shard":"s1","ports":[{"name":"http","port":8080,"proto":"tcp"}]}`},
		{malInstKey("g2", "web"), `{"service":"web","host":"g2","ports":[{"name":"http","port":8080,"proto":"tcp"},{"name":"dns","port":53,"proto":"udp"}]}`},
		{malInstKey("g1", "api"), `{"service":"api","host":"g1","addrs":{"public":["198.51.100.1"]}}`},
		{"/rollcall/elections/web/1", "g1"},
		// Edges that are not malformed: a value of exactly the size limit,
		// and deep nesting in an unknown field.
		{malInstKey("g3", "pad"), padTo(`{"service":"pad","host":"g3","addrs":{"public":["192.0.2.3"]}}`, registry.MaxValueSize)},
		{malInstKey("g4", "nest"), `{"service":"nest","host":"g4","addrs":{"public":["192.0.2.4"]},"x":` + malNested(5000) + `}`},
	}
}

// goodAnswers is every good name and what it answers, as "TYPE rdata" with
// the zone written Z.
var goodAnswers = []struct {
	name   string
	qtype  uint16
	answer []string
}{
	{name: "web", qtype: dns.TypeA, answer: []string{"A 192.0.2.1", "A 192.0.2.2"}},
	{name: "web", qtype: dns.TypeAAAA, answer: []string{"AAAA 2001:db8::1"}},
	{name: "web", qtype: dns.TypeSRV, answer: []string{"SRV 10 10 8080 g1.web.Z", "SRV 10 10 8080 g2.web.Z", "SRV 10 10 53 g2.web.Z"}},
	{name: "_http._tcp.web", qtype: dns.TypeSRV, answer: []string{"SRV 10 10 8080 g1.web.Z", "SRV 10 10 8080 g2.web.Z"}},
	{name: "_dns._udp.web", qtype: dns.TypeSRV, answer: []string{"SRV 10 10 53 g2.web.Z"}},
	{name: "g1.web", qtype: dns.TypeA, answer: []string{"A 192.0.2.1"}},
	{name: "g1.web", qtype: dns.TypeAAAA, answer: []string{"AAAA 2001:db8::1"}},
	{name: "g1.web", qtype: dns.TypeTXT, answer: []string{`TXT "state=passing"`}},
	{name: "g2.web", qtype: dns.TypeTXT, answer: []string{`TXT "state=passing"`}},
	{name: "g1.api", qtype: dns.TypeTXT, answer: []string{`TXT "state=passing"`}},
	{name: "g2.web", qtype: dns.TypeA, answer: []string{"A 192.0.2.2"}},
	{name: "s1.web", qtype: dns.TypeA, answer: []string{"A 192.0.2.1"}},
	{name: "web-master", qtype: dns.TypeA, answer: []string{"A 192.0.2.1"}},
	{name: "web-master", qtype: dns.TypeTXT, answer: []string{`TXT "host=g1" "term={term}"`}},
	{name: "api", qtype: dns.TypeA, answer: []string{"A 198.51.100.1"}},
	{name: "g1.api", qtype: dns.TypeA, answer: []string{"A 198.51.100.1"}},
	{name: "pad", qtype: dns.TypeA, answer: []string{"A 192.0.2.3"}},
	{name: "nest", qtype: dns.TypeA, answer: []string{"A 192.0.2.4"}},
	{name: "g1.elx", qtype: dns.TypeA, answer: []string{"A 192.0.2.1"}},
}

// leakMarks are what any bad data would bring into an answer: its addresses
// and host names.
var leakMarks = []string{"203.0.113.", "2001:db8:bad:", "bad", "evil", "fe80:", "0.0.0.0"}

// malStack is a real etcd and a real CoreDNS serving it, with the
// prometheus plugin on its own port.
type malStack struct {
	cli          *clientv3.Client
	src          string
	dns, metrics string // addresses
	term         int64  // term of web's master
}

func (s *malStack) start(t *testing.T, e *testkit.Etcd) {
	t.Helper()
	_, ports := testkit.StartCoreDNSPorts(t, 2, func(p []int) string {
		return fmt.Sprintf("%s:%d {\n  bind 127.0.0.1\n  rollcall {\n    endpoint %s\n  }\n  prometheus 127.0.0.1:%d\n}\n", malZone, p[0], e.ClientURL, p[1])
	})
	s.dns = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	s.metrics = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	s.src = source(e.Endpoints())
}

func (s *malStack) put(t *testing.T, kvs ...malKV) *clientv3.PutResponse {
	t.Helper()
	var r *clientv3.PutResponse
	for _, w := range kvs {
		r = testkit.Put(t, s.cli, w.key, w.value)
		if w.key == "/rollcall/elections/web/1" {
			s.term = r.Header.Revision
		}
	}
	return r
}

// sync writes a fresh good instance and waits until it is served: the watch
// delivers events in order, so everything written before it is applied.
func (s *malStack) sync(t *testing.T, name string) {
	t.Helper()
	s.put(t, malKV{malInstKey("g2", name), `{"service":"` + name + `","host":"g2"}`})
	testkit.Eventually(t, 30*time.Second, name+" never served", func() bool {
		m, err := testkit.Exchange("tcp", s.dns, "", name+"."+malZone, dns.TypeA)
		return err == nil && m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1
	})
}

// decodeErrors scrapes coredns_rollcall_decode_errors_total of this stack's
// source from the prometheus plugin, by reason.
func (s *malStack) decodeErrors(t *testing.T) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	const name = "coredns_rollcall_decode_errors_total{"
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), name)
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(line, "} ")
		if !ok {
			t.Fatalf("metric line %q", sc.Text())
		}
		l := parseLabels(labels)
		if l["source"] != s.src {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", sc.Text(), err)
		}
		out[l["reason"]] += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	return out
}

// parseLabels parses `a="x",b="y"` (values without escapes, as ours are).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		k, rest, _ := strings.Cut(s, `="`)
		v, rest, _ := strings.Cut(rest, `"`)
		out[k] = v
		s = strings.TrimPrefix(rest, ",")
	}
	return out
}

func (s *malStack) watchState(t *testing.T) string {
	t.Helper()
	for _, st := range []string{"listing", "watching", "unreachable"} {
		if metric(t, "coredns_rollcall_watch_state", map[string]string{"source": s.src, "state": st}) == 1 {
			return st
		}
	}
	return ""
}

// TestMalformed writes every malformed case next to good data and checks
// that CoreDNS serves the good data only and counts each bad key once, by
// reason: "list" writes them before CoreDNS starts, "watch" while it runs.
func TestMalformed(t *testing.T) {
	cases := malformedCases()
	want := map[string]float64{}
	seen := map[string]string{}
	for _, c := range cases {
		if prev, dup := seen[c.key]; dup {
			t.Fatalf("cases %q and %q share key %q: each bad key must be counted once", prev, c.name, c.key)
		}
		seen[c.key] = c.name
		want[c.reason]++
	}
	for _, phase := range []string{"list", "watch"} {
		t.Run(phase, func(t *testing.T) {
			e := testkit.StartEtcd(t)
			s := &malStack{cli: e.Client(t)}
			s.put(t, goodKVs()...)
			if phase == "watch" {
				s.start(t, e)
				s.sync(t, "sync0")
			}
			// Good values the bad ones will replace, and the good keys
			// the cases need.
			for _, c := range cases {
				s.put(t, c.before...)
				if c.over != "" {
					s.put(t, malKV{c.key, c.over})
				}
			}
			if phase == "watch" {
				s.sync(t, "sync1")
				for _, c := range cases {
					if c.overServed == "" {
						continue
					}
					if m := testkit.Query(t, "udp", s.dns, "", c.overServed+"."+malZone, dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
						t.Fatalf("%s: before the bad value, %s is not served: %v", c.name, c.overServed, m)
					}
				}
				if got := s.decodeErrors(t); len(got) != 0 {
					t.Fatalf("decode errors before any bad data: %v", got)
				}
			}
			for _, c := range cases {
				s.put(t, malKV{c.key, c.value})
				s.put(t, c.after...)
			}
			if phase == "list" {
				s.start(t, e)
			}
			s.sync(t, "sync2")

			t.Run("counted once each, by reason", func(t *testing.T) {
				got := s.decodeErrors(t)
				for _, r := range []string{reasonKey, reasonTooLarge, reasonRecord, reasonMismatch, reasonCandidate} {
					if got[r] != want[r] {
						t.Errorf("decode errors %s: %v, want %v", r, got[r], want[r])
					}
				}
				var sum float64
				for _, v := range got {
					sum += v
				}
				if sum != float64(len(cases)) {
					t.Errorf("decode errors: %v in all (%v), want %d, one per bad key", sum, got, len(cases))
				}
			})
			t.Run("still watching", func(t *testing.T) {
				if st := s.watchState(t); st != "watching" {
					t.Errorf("watch state %q after the bad data, want watching", st)
				}
			})
			for _, netw := range []string{"udp", "tcp"} {
				t.Run("good data served/"+netw, func(t *testing.T) { s.checkGood(t, netw) })
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					for _, netw := range []string{"udp", "tcp"} {
						for _, name := range c.nx {
							m := testkit.Query(t, netw, s.dns, "", name+"."+malZone, dns.TypeA)
							if m.Rcode != dns.RcodeNameError {
								t.Errorf("%s over %s: %s %v, want NXDOMAIN", name, netw, dns.RcodeToString[m.Rcode], m.Answer)
							}
							checkNoLeak(t, m)
						}
						for _, name := range c.nodata {
							for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
								m := testkit.Query(t, netw, s.dns, "", name+"."+malZone, qt)
								if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
									t.Errorf("%s %s over %s: %s %v, want NODATA", name, dns.TypeToString[qt], netw, dns.RcodeToString[m.Rcode], m.Answer)
								}
								checkNoLeak(t, m)
							}
						}
					}
				})
			}
			if phase != "watch" {
				return
			}
			// Deleting the bad keys is harmless: nothing more is counted,
			// the good data stays, and with the garbage leading candidate
			// of elx gone, the next candidate leads.
			t.Run("bad keys deleted", func(t *testing.T) {
				before := s.decodeErrors(t)
				for _, c := range cases {
					testkit.Delete(t, s.cli, c.key)
				}
				s.sync(t, "sync3")
				if got := s.decodeErrors(t); !maps.Equal(got, before) {
					t.Errorf("decode errors after deleting the bad keys: %v, want %v as before", got, before)
				}
				for _, netw := range []string{"udp", "tcp"} {
					s.checkGood(t, netw)
					m := testkit.Query(t, netw, s.dns, "", "elx-master."+malZone, dns.TypeA)
					compareRRs(t, "elx-master A over "+netw, m.Answer, []string{"A 192.0.2.1"})
				}
				if st := s.watchState(t); st != "watching" {
					t.Errorf("watch state %q, want watching", st)
				}
			})
		})
	}
}

// checkGood checks that every good name answers what it should over netw,
// and nothing of the bad data.
func (s *malStack) checkGood(t *testing.T, netw string) {
	t.Helper()
	for _, g := range goodAnswers {
		m := testkit.Query(t, netw, s.dns, "", g.name+"."+malZone, g.qtype)
		want := make([]string, len(g.answer))
		for i, a := range g.answer {
			want[i] = strings.ReplaceAll(a, "{term}", strconv.FormatInt(s.term, 10))
		}
		if m.Rcode != dns.RcodeSuccess {
			t.Errorf("%s %s over %s: %s, want NOERROR", g.name, dns.TypeToString[g.qtype], netw, dns.RcodeToString[m.Rcode])
		}
		compareRRs(t, g.name+" "+dns.TypeToString[g.qtype]+" over "+netw, m.Answer, want)
		checkNoLeak(t, m)
	}
}

// compareRRs compares records, written "TYPE rdata" with the zone as Z, with
// want in any order.
func compareRRs(t *testing.T, what string, rrs []dns.RR, want []string) {
	t.Helper()
	got := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		rdata := strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String()))
		got = append(got, dns.TypeToString[rr.Header().Rrtype]+" "+strings.ReplaceAll(rdata, malZone, "Z"))
	}
	if !malSameSet(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func malSameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	n := map[string]int{}
	for _, s := range a {
		n[s]++
	}
	for _, s := range b {
		n[s]--
		if n[s] < 0 {
			return false
		}
	}
	return true
}

// checkNoLeak fails when any record of m carries what only bad data holds.
func checkNoLeak(t *testing.T, m *dns.Msg) {
	t.Helper()
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			s := strings.ToLower(rr.String())
			for _, mark := range leakMarks {
				if strings.Contains(s, mark) {
					t.Errorf("bad data served: %s", rr)
				}
			}
		}
	}
}
