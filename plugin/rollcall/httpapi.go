package rollcall

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rollcall/rollcall/registry"
)

// The JSON API (plugin/rollcall/README.md, "HTTP"): every answer is read
// from the block's index, as a DNS answer is, with the caller's view
// picked by the same function as a DNS client's (Rollcall.viewOfAddr), so
// the API never shows an overlay address to a client off that overlay.

// Blocking queries (?index=R&wait=D), as Consul's: held until the
// revision served passes R, or for the wait plus a random part of up to a
// sixteenth of it, so that many clients woken together do not all come
// back together.
const (
	defaultWait = 5 * time.Minute
	maxWait     = 10 * time.Minute
	// maxBlocking bounds the blocking queries held at once; more get 429.
	maxBlocking = 4096
)

// indexHeader carries the revision a response reflects.
const indexHeader = "X-Rollcall-Index"

// waiting counts the blocking queries held in this process, for the bound.
var waiting atomic.Int64

var (
	httpRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "http_requests_total",
		Help:      "Requests to the HTTP API and status page (the http option), by endpoint (services, service, prometheus, explain, page, static, other) and status code.",
	}, []string{"endpoint", "code"})

	httpBlocking = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rollcall",
		Name:      "http_blocking_queries",
		Help:      "HTTP blocking queries (?index=) held, waiting for the revision served to move.",
	})
)

// httpAPI is a block's HTTP handler, made anew each time its server
// starts.
type httpAPI struct {
	rc   *Rollcall
	feed *httpFeed
	ld   *loader
	mux  *http.ServeMux
}

func newHTTPAPI(rc *Rollcall, feed *httpFeed, ld *loader) *httpAPI {
	a := &httpAPI{rc: rc, feed: feed, ld: ld, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /v1/services", counted("services", a.services))
	a.mux.HandleFunc("GET /v1/services/{service}", counted("service", a.service))
	a.mux.HandleFunc("GET /v1/prometheus", counted("prometheus", a.prometheus))
	a.mux.HandleFunc("GET /v1/explain", counted("explain", a.explain))
	a.mux.HandleFunc("GET /{$}", counted("page", a.page))
	a.mux.HandleFunc("GET /static/{file}", counted("static", staticFile))
	a.mux.HandleFunc("/", counted("other", a.other))
	return a
}

func (a *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	a.mux.ServeHTTP(w, r)
}

// other answers what no endpoint matches: the API is read-only.
func (a *httpAPI) other(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, "the rollcall API is read-only: use GET")
		return
	}
	writeError(w, r, http.StatusNotFound, fmt.Sprintf("no endpoint %s: see / for the status page, or /v1/services, /v1/services/{service}, /v1/prometheus?port=NAME and /v1/explain?name=NAME&type=TYPE", r.URL.Path))
}

// counted counts a handler's requests by status code.
func counted(endpoint string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		httpRequests.WithLabelValues(endpoint, strconv.Itoa(sw.code)).Inc()
	}
}

// statusWriter notes the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// errorBody is every error's JSON.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	writeJSON(w, r, status, errorBody{Error: msg})
}

// writeJSON writes body as JSON, indented when the URL asks ?pretty.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, body any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if r.URL.Query().Has("pretty") {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(body); err != nil {
		// Only a bug gets here: every body is plain data.
		status = http.StatusInternalServerError
		b.Reset()
		fmt.Fprintf(&b, "{\"error\":%q}\n", "encode the answer: "+err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// apiError is a request the API refuses, with its status code.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail writes err as the response: an apiError with its status, anything
// else as a 500.
func fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, r, ae.status, ae.msg)
		return
	}
	writeError(w, r, http.StatusInternalServerError, err.Error())
}

// commonParams are the query parameters every endpoint takes.
var commonParams = []string{"index", "wait", "pretty"}

// prepare checks the query parameters (each given once, none unknown),
// answers 503 before the first list of etcd is in, and holds a blocking
// query. It returns the parameters, or writes the error and returns false.
func (a *httpAPI) prepare(w http.ResponseWriter, r *http.Request, params ...string) (url.Values, bool) {
	q, err := checkParams(r.URL, params)
	if err == nil {
		err = a.loaded()
	}
	if err == nil {
		err = a.block(r.Context(), q)
	}
	if err != nil {
		fail(w, r, err)
		return nil, false
	}
	return q, true
}

// checkParams parses the query, refusing unknown and repeated parameters:
// a typo would otherwise be silently ignored.
func checkParams(u *url.URL, params []string) (url.Values, error) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, badRequest("query string: %v", err)
	}
	for k, vs := range q {
		if !slices.Contains(params, k) && !slices.Contains(commonParams, k) {
			known := append(slices.Clone(params), commonParams...)
			return nil, badRequest("unknown parameter %q: %s takes %s", k, u.Path, strings.Join(known, ", "))
		}
		if len(vs) > 1 {
			return nil, badRequest("parameter %q is given %d times: give it once", k, len(vs))
		}
	}
	return q, nil
}

// loaded is the 503 of a server that has no list of etcd yet.
func (a *httpAPI) loaded() error {
	if a.rc.ix.isLoaded() {
		return nil
	}
	return &apiError{http.StatusServiceUnavailable, fmt.Sprintf("no registry yet: the first list of etcd %s is not in (watch state %q); retry shortly, and see the CoreDNS log if it stays so",
		a.ld.source, a.ld.getStatus())}
}

// block holds a blocking query (?index=R) until the revision served passes
// R, the wait ends, the client goes away or the server stops.
func (a *httpAPI) block(ctx context.Context, q url.Values) error {
	after, wait, blocking, err := blockingParams(q)
	if err != nil || !blocking {
		return err
	}
	if a.feed.revision() > after {
		return nil
	}
	if n := waiting.Add(1); n > maxBlocking {
		waiting.Add(-1)
		return &apiError{http.StatusTooManyRequests, fmt.Sprintf("%d blocking queries are held already: retry later, or ask without index", maxBlocking)}
	}
	httpBlocking.Inc()
	defer func() { waiting.Add(-1); httpBlocking.Dec() }()
	ctx, cancel := context.WithTimeout(ctx, jittered(wait))
	defer cancel()
	a.feed.wait(ctx, after)
	return nil
}

// jittered is a blocking query's wait plus a random part of up to a
// sixteenth of it: queries woken by one change come back together, and
// without the spread their next waits would end together too.
func jittered(wait time.Duration) time.Duration {
	return wait + rand.N(wait/16+1)
}

// blockingParams reads ?index=R&wait=D. wait is a Go duration ("30s",
// "5m") or bare seconds, at most maxWait, defaultWait when absent; it
// means nothing without index.
func blockingParams(q url.Values) (after int64, wait time.Duration, blocking bool, err error) {
	if !q.Has("index") {
		return 0, 0, false, nil
	}
	after, err = strconv.ParseInt(q.Get("index"), 10, 64)
	if err != nil || after < 0 {
		return 0, 0, false, badRequest("index %q is not a revision: give the %s header of an earlier answer", q.Get("index"), indexHeader)
	}
	wait = defaultWait
	if s := q.Get("wait"); s != "" {
		if n, err := strconv.ParseUint(s, 10, 32); err == nil {
			wait = time.Duration(n) * time.Second
		} else if wait, err = time.ParseDuration(s); err != nil || wait < 0 {
			return 0, 0, false, badRequest("wait %q is not a duration such as 30s or 5m", s)
		}
		if wait > maxWait {
			return 0, 0, false, badRequest("wait %s is longer than the most, %s", s, maxWait)
		}
	}
	return after, wait, true, nil
}

// viewOfRequest is the caller's view and address: its source address
// through the DNS path's own rule. A proxy in front would make every
// caller the proxy, so no forwarding header is trusted.
func (a *httpAPI) viewOfRequest(r *http.Request) (viewSet, netip.Addr) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return 0, netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	return a.rc.viewOfAddr(ip), ip
}

// viewNames names the networks of a view, in Corefile order; empty means
// public addresses only.
func (a *httpAPI) viewNames(view viewSet) []string {
	out := []string{}
	for i, n := range a.rc.cfg.nets {
		if view&(1<<uint(i)) != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// snapshot returns the revision served and every service's answers, by
// name, from one read of the index.
func (ix *index) snapshot() (int64, []string, map[string]*svcAnswers) {
	ix.mu.RLock()
	rev := ix.rev
	services := make(map[string]*svcAnswers, len(ix.services))
	for name, s := range ix.services {
		services[name] = s
	}
	ix.mu.RUnlock()
	names := make([]string, 0, len(services))
	for name := range services {
		names = append(names, name)
	}
	slices.Sort(names)
	return rev, names, services
}

// masterJSON is a service's master.
type masterJSON struct {
	Host string `json:"host"`
	Term int64  `json:"term"`
}

// serviceSummary is a service in /v1/services.
type serviceSummary struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
	// Served is how many instances its DNS names answer with.
	Served int `json:"served"`
	// States counts the instances by state: passing, warning, critical,
	// draining, maintenance.
	States      map[string]int `json:"states"`
	FailingOpen bool           `json:"failing_open,omitempty"`
	Master      *masterJSON    `json:"master,omitempty"`
}

type servicesBody struct {
	Revision int64            `json:"revision"`
	Services []serviceSummary `json:"services"`
}

// services is GET /v1/services: every service with its instance counts by
// state and its master.
func (a *httpAPI) services(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.prepare(w, r); !ok {
		return
	}
	rev, names, services := a.rc.ix.snapshot()
	body := servicesBody{Revision: rev, Services: make([]serviceSummary, 0, len(names))}
	for _, name := range names {
		body.Services = append(body.Services, summarize(name, services[name]))
	}
	w.Header().Set(indexHeader, strconv.FormatInt(rev, 10))
	writeJSON(w, r, http.StatusOK, body)
}

func summarize(name string, s *svcAnswers) serviceSummary {
	sum := serviceSummary{Name: name, Instances: len(s.all), Served: len(s.insts), States: map[string]int{}, FailingOpen: s.failingOpen}
	for _, inst := range s.all {
		sum.States[inst.dnsState()]++
	}
	if host, term := masterOf(s); host != "" {
		sum.Master = &masterJSON{Host: host, Term: term}
	}
	return sum
}

// masterOf returns a service's master and term, or "" when none is
// served (s may be nil).
func masterOf(s *svcAnswers) (host string, term int64) {
	if s == nil || s.master == nil {
		return "", 0
	}
	return s.master.inst.host, termOf(s.master.txt)
}

// termOf reads the term from a master's packed TXT, `"host=H" "term=T"`:
// the index keeps it only there, as DNS serves it.
func termOf(txt []byte) int64 {
	for len(txt) > 0 {
		n := int(txt[0])
		if 1+n > len(txt) {
			break
		}
		if s, ok := strings.CutPrefix(string(txt[1:1+n]), "term="); ok {
			t, _ := strconv.ParseInt(s, 10, 64)
			return t
		}
		txt = txt[1+n:]
	}
	return 0
}

// instanceJSON is an instance in /v1/services/{service}, with the
// addresses the caller's view gets.
type instanceJSON struct {
	Host  string          `json:"host"`
	Shard string          `json:"shard,omitempty"`
	Ports []registry.Port `json:"ports"`
	// Network is the network whose addresses the caller gets: public, or
	// an overlay both the caller and the instance are on.
	Network string   `json:"network"`
	Addrs   []string `json:"addrs"`
	// State is passing, warning, critical, draining, or maintenance while
	// an operator holds the instance out of service.
	State       string                `json:"state"`
	Since       int64                 `json:"since,omitempty"` // Unix seconds
	Reason      string                `json:"reason,omitempty"`
	Maintenance *registry.Maintenance `json:"maintenance,omitempty"`
	// Served: the service's DNS names answer with it.
	Served bool `json:"served"`
	Master bool `json:"master"`
}

type serviceBody struct {
	Revision int64  `json:"revision"`
	Name     string `json:"name"`
	// View is the networks of the caller's view; empty: public only.
	View        []string       `json:"view"`
	Master      *masterJSON    `json:"master,omitempty"`
	FailingOpen bool           `json:"failing_open,omitempty"`
	Instances   []instanceJSON `json:"instances"`
}

// service is GET /v1/services/{service}: its instances in the caller's
// view, and its master.
func (a *httpAPI) service(w http.ResponseWriter, r *http.Request) {
	name := strings.ToLower(r.PathValue("service"))
	if err := registry.CheckName("service", name); err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if _, ok := a.prepare(w, r); !ok {
		return
	}
	rev, s := a.rc.ix.lookup([]byte(name))
	w.Header().Set(indexHeader, strconv.FormatInt(rev, 10))
	if s == nil {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no service %s: no instance of it is registered (GET /v1/services lists those that are)", name))
		return
	}
	view, _ := a.viewOfRequest(r)
	writeJSON(w, r, http.StatusOK, a.serviceBody(rev, name, s, view))
}

func (a *httpAPI) serviceBody(rev int64, name string, s *svcAnswers, view viewSet) serviceBody {
	body := serviceBody{Revision: rev, Name: name, View: a.viewNames(view), FailingOpen: s.failingOpen, Instances: make([]instanceJSON, 0, len(s.all))}
	master, term := masterOf(s)
	if master != "" {
		body.Master = &masterJSON{Host: master, Term: term}
	}
	for _, inst := range s.all {
		body.Instances = append(body.Instances, a.instance(s, inst, view, master))
	}
	return body
}

func (a *httpAPI) instance(s *svcAnswers, inst *instAnswers, view viewSet, master string) instanceJSON {
	j := instanceJSON{
		Host: inst.host, Shard: inst.src.Shard, Ports: inst.ports,
		Network: a.networkFor(inst, view), Addrs: addrStrings(inst.addrsFor(view)),
		State: inst.dnsState(), Since: inst.src.Since, Reason: inst.src.Reason, Maintenance: inst.maint,
		Served: s.serves(inst), Master: inst.host == master,
	}
	if j.Ports == nil {
		j.Ports = []registry.Port{}
	}
	return j
}

// networkFor names the network whose addresses a client with view gets
// from inst (the same pick as addrsFor).
func (a *httpAPI) networkFor(inst *instAnswers, view viewSet) string {
	if k := pick(view, inst.nets); k >= 0 {
		return a.rc.cfg.nets[k].name
	}
	return registry.PublicNetwork
}

func addrStrings(ips []netip.Addr) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// portList writes ports as `name:port/proto`, comma-separated, or "none".
func portList(ports []registry.Port) string {
	if len(ports) == 0 {
		return "none"
	}
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = fmt.Sprintf("%s:%d/%s", p.Name, p.Port, p.Proto)
	}
	return strings.Join(parts, ",")
}

// sdGroup is a target group of Prometheus's HTTP service discovery.
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// The labels of every target, as Prometheus's own discoveries name theirs
// (__meta_<mechanism>_<name>).
const (
	labelService = "__meta_rollcall_service"
	labelHost    = "__meta_rollcall_host"
	labelShard   = "__meta_rollcall_shard"
	labelState   = "__meta_rollcall_state"
	labelMaster  = "__meta_rollcall_master"
	labelNetwork = "__meta_rollcall_network"
	labelPort    = "__meta_rollcall_port"
)

// prometheus is GET /v1/prometheus?port=NAME[&service=S][&state=...]:
// every instance that has the named port, as a target group of its own,
// at its address in the caller's (Prometheus's) view. Every state is
// included unless state= says which: a sick instance is the one whose
// metrics matter.
func (a *httpAPI) prometheus(w http.ResponseWriter, r *http.Request) {
	q, err := checkParams(r.URL, []string{"port", "service", "state"})
	if err != nil {
		fail(w, r, err)
		return
	}
	port, only, states, err := sdParams(q)
	if err != nil {
		fail(w, r, err)
		return
	}
	if _, ok := a.prepare(w, r, "port", "service", "state"); !ok {
		return
	}
	rev, names, services := a.rc.ix.snapshot()
	if only != "" {
		names = []string{only}
	}
	view, _ := a.viewOfRequest(r)
	groups := []sdGroup{}
	for _, name := range names {
		if s := services[name]; s != nil {
			groups = a.appendTargets(groups, name, s, port, states, view)
		}
	}
	w.Header().Set(indexHeader, strconv.FormatInt(rev, 10))
	writeJSON(w, r, http.StatusOK, groups)
}

// displayStates are the states an instance is shown in.
var displayStates = []string{string(registry.StatePassing), string(registry.StateWarning), string(registry.StateCritical), string(registry.StateDraining), stateMaintenance}

// sdParams reads the port name, the one service (or "") and the states to
// include (nil: all).
func sdParams(q url.Values) (port, service string, states []string, err error) {
	port = strings.ToLower(q.Get("port"))
	if port == "" {
		return "", "", nil, badRequest("port is required: the name of the port to scrape, as the instances register it, e.g. /v1/prometheus?port=metrics")
	}
	if err := registry.CheckName("port", port); err != nil {
		return "", "", nil, badRequest("port: %v", err)
	}
	if service = strings.ToLower(q.Get("service")); service != "" {
		if err := registry.CheckName("service", service); err != nil {
			return "", "", nil, badRequest("service: %v", err)
		}
	}
	if s := q.Get("state"); s != "" {
		for _, st := range strings.Split(s, ",") {
			if !slices.Contains(displayStates, st) {
				return "", "", nil, badRequest("state %q is not one of %s", st, strings.Join(displayStates, ", "))
			}
			states = append(states, st)
		}
	}
	return port, service, states, nil
}

// appendTargets adds a target group per instance of s that has the port,
// in one of states (nil: any), with an address in view.
func (a *httpAPI) appendTargets(groups []sdGroup, name string, s *svcAnswers, port string, states []string, view viewSet) []sdGroup {
	master, _ := masterOf(s)
	for _, inst := range s.all {
		num, ok := portNumber(inst.ports, port)
		state := inst.dnsState()
		if !ok || states != nil && !slices.Contains(states, state) {
			continue
		}
		ip, ok := scrapeAddr(inst.addrsFor(view))
		if !ok {
			continue
		}
		groups = append(groups, sdGroup{
			Targets: []string{netip.AddrPortFrom(ip, num).String()},
			Labels: map[string]string{
				labelService: name,
				labelHost:    inst.host,
				labelShard:   inst.src.Shard,
				labelState:   state,
				labelMaster:  strconv.FormatBool(inst.host == master),
				labelNetwork: a.networkFor(inst, view),
				labelPort:    port,
			},
		})
	}
	return groups
}

// portNumber finds the named port, TCP before UDP (scrapes are HTTP).
func portNumber(ports []registry.Port, name string) (uint16, bool) {
	var udp uint16
	for _, p := range ports {
		if p.Name != name {
			continue
		}
		if p.Proto == "tcp" {
			return uint16(p.Port), true
		}
		udp = uint16(p.Port)
	}
	return udp, udp != 0
}

// scrapeAddr picks one address to scrape: the first IPv4 one, else the
// first IPv6 one.
func scrapeAddr(ips []netip.Addr) (netip.Addr, bool) {
	for _, ip := range ips {
		if ip.Is4() {
			return ip, true
		}
	}
	if len(ips) > 0 {
		return ips[0], true
	}
	return netip.Addr{}, false
}
