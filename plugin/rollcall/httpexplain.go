package rollcall

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// explainBody is GET /v1/explain's answer: the view a client gets and the
// DNS answer it would receive, record by record.
type explainBody struct {
	Revision int64  `json:"revision"`
	Client   string `json:"client"`
	// View is the networks of the client's view; empty: public only.
	View      []string `json:"view"`
	Question  string   `json:"question"`
	Net       string   `json:"net"`
	Rcode     string   `json:"rcode"`
	Truncated bool     `json:"truncated"`
	// The records of each section, as dig prints them.
	Answer     []string `json:"answer"`
	Authority  []string `json:"authority"`
	Additional []string `json:"additional"`
	// Fallthrough: the name does not exist here, and `fallthrough` hands
	// the query to the next plugin, whose answer is not shown.
	Fallthrough bool `json:"fallthrough,omitempty"`
}

// explain is GET /v1/explain?name=NAME&type=TYPE[&client=IP][&net=udp|tcp]:
// the query answered by the plugin's own ServeDNS as if it came from
// client (default: the caller) over net (default udp, without EDNS0: 512
// bytes, as a stub resolver asks). A client whose view holds a network the
// caller's lacks is refused (403): otherwise explain would hand out the
// overlay addresses views keep from the caller.
func (a *httpAPI) explain(w http.ResponseWriter, r *http.Request) {
	params := []string{"name", "type", "client", "net"}
	q, err := checkParams(r.URL, params)
	if err != nil {
		fail(w, r, err)
		return
	}
	callerView, caller := a.viewOfRequest(r)
	x, err := a.explainQuery(q.Get("name"), q.Get("type"), q.Get("client"), q.Get("net"), caller)
	if err != nil {
		fail(w, r, err)
		return
	}
	x.view = a.rc.viewOfAddr(x.client)
	if extra := x.view &^ callerView; extra != 0 {
		writeError(w, r, http.StatusForbidden, fmt.Sprintf("client %s is on %s, which your address %s is not on: explain shows only what you could be told yourself; ask from an address on those networks",
			x.client, strings.Join(a.viewNames(extra), ", "), caller))
		return
	}
	if _, ok := a.prepare(w, r, params...); !ok {
		return
	}
	rev, _ := a.rc.ix.lookup(nil)
	body, err := a.answer(r.Context(), x)
	if err != nil {
		fail(w, r, err)
		return
	}
	body.Revision = rev
	w.Header().Set(indexHeader, strconv.FormatInt(rev, 10))
	writeJSON(w, r, http.StatusOK, body)
}

// explainQuery is a checked explain request.
type explainQuery struct {
	name   string
	qtype  uint16
	client netip.Addr
	tcp    bool
	view   viewSet
}

// explainQuery checks explain's parameters; the client defaults to the
// caller.
func (a *httpAPI) explainQuery(name, qtype, client, netw string, caller netip.Addr) (*explainQuery, error) {
	x := &explainQuery{client: caller}
	if name == "" {
		return nil, badRequest("name is required: the name asked, e.g. /v1/explain?name=web.%s&type=A", strings.TrimSuffix(a.rc.cfg.zones[0], "."))
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, badRequest("name %q is not a domain name", name)
	}
	x.name = dns.Fqdn(name)
	if zone, _ := zoneOf(a.rc.cfg.zones, x.name); zone < 0 {
		return nil, badRequest("name %s is not in this server block's zones (%s): other plugins answer it", x.name, strings.Join(a.rc.cfg.zones, " "))
	}
	if qtype == "" {
		qtype = "A"
	}
	t, ok := dns.StringToType[strings.ToUpper(qtype)]
	if !ok {
		return nil, badRequest("type %q is not a DNS type such as A, AAAA, SRV, TXT or SOA", qtype)
	}
	x.qtype = t
	if client != "" {
		ip, err := netip.ParseAddr(client)
		if err != nil || ip.Zone() != "" {
			return nil, badRequest("client %q is not an IP address such as 10.100.0.7 or fd00::7", client)
		}
		x.client = ip.Unmap()
	}
	switch netw {
	case "", "udp":
	case "tcp":
		x.tcp = true
	default:
		return nil, badRequest("net %q is not udp or tcp", netw)
	}
	return x, nil
}

// answer runs the query through ServeDNS, as the client would have it
// answered. The handler is a copy without the next plugin: a query
// explained never leaves the plugin (a fallthrough is reported instead).
func (a *httpAPI) answer(ctx context.Context, x *explainQuery) (explainBody, error) {
	m := new(dns.Msg)
	m.SetQuestion(x.name, x.qtype)
	ew := &explainWriter{tcp: x.tcp, client: x.client}
	h := *a.rc
	h.Next = nil
	rcode, err := h.ServeDNS(ctx, ew, m)
	body := explainBody{
		Client: x.client.String(), View: a.viewNames(x.view),
		Question: fmt.Sprintf("%s IN %s", x.name, dns.TypeToString[x.qtype]), Net: "udp",
	}
	if x.tcp {
		body.Net = "tcp"
	}
	reply := ew.msg
	if reply == nil {
		if err != nil && a.rc.cfg.fall.Through(x.name) {
			body.Fallthrough = true
			rcode = dns.RcodeNameError
		} else if err != nil {
			return body, fmt.Errorf("answer %s: %w", body.Question, err)
		}
		// What CoreDNS writes for a handler that returns a failure rcode.
		reply = new(dns.Msg)
		reply.SetRcode(m, rcode)
	}
	body.Rcode = dns.RcodeToString[reply.Rcode]
	body.Truncated = reply.Truncated
	body.Answer, body.Authority, body.Additional = rrStrings(reply.Answer), rrStrings(reply.Ns), rrStrings(reply.Extra)
	return body, nil
}

// rrStrings writes records as dig does, with spaces for tabs.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return out
}

// explainWriter is the dns.ResponseWriter an explained query is answered
// through: it poses as a connection from the client, over UDP or TCP (the
// size limit depends on it), and keeps the reply.
type explainWriter struct {
	tcp    bool
	client netip.Addr
	msg    *dns.Msg
}

func (w *explainWriter) addr(ip netip.Addr, port int) net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: ip.AsSlice(), Port: port}
	}
	return &net.UDPAddr{IP: ip.AsSlice(), Port: port}
}

func (w *explainWriter) LocalAddr() net.Addr {
	return w.addr(netip.IPv6Loopback(), 53)
}

func (w *explainWriter) RemoteAddr() net.Addr { return w.addr(w.client, 53000) }

func (w *explainWriter) WriteMsg(m *dns.Msg) error {
	w.msg = m
	return nil
}

func (w *explainWriter) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, fmt.Errorf("unpack the reply: %w", err)
	}
	w.msg = m
	return len(b), nil
}

func (w *explainWriter) Close() error        { return nil }
func (w *explainWriter) TsigStatus() error   { return nil }
func (w *explainWriter) TsigTimersOnly(bool) {}
func (w *explainWriter) Hijack()             {}
