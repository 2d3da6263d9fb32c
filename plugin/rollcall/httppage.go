package rollcall

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The status page (GET /): every service with its instances, states,
// addresses and ports, masters and terms, the revision served and the
// watch's state, and the last changes seen. It is rendered on the server
// from httpui/status.html and needs nothing from the network: its style
// and its few lines of script (httpui/status.css, httpui/status.js) are
// embedded too. The script follows changes with a blocking query for the
// page's state part (?partial=1&index=R); without script the page
// refreshes itself.

//go:embed httpui
var httpUI embed.FS

var pageTemplate = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"join": func(xs []string) string { return strings.Join(xs, ", ") },
}).ParseFS(httpUI, "httpui/status.html"))

// pageWait is how long the page's script holds a blocking query: short
// enough that the watch's age shown stays close to the truth.
const pageWait = 15 * time.Second

// maxPageInstances bounds the instance rows of one page: a registry larger
// than a person can read is summarised, and the API has the rest.
const maxPageInstances = 2000

// pageData is what the template shows.
type pageData struct {
	Zones      string
	Revision   int64
	WatchState string
	Stale      bool // the watch is anything but current
	Age        string
	Client     string
	View       string
	Generated  string
	NotLoaded  string
	Wait       string
	Services   []pageService
	Hidden     int // instance rows left out (maxPageInstances)
	Changes    []pageChange
}

type pageService struct {
	Name        string
	Total       int
	Served      int
	States      []stateCount
	Master      string
	Term        int64
	FailingOpen bool
	Instances   []pageInstance // nil when left out
}

type stateCount struct {
	State string
	N     int
}

type pageInstance struct {
	Host, Shard, State, Network, Ports string
	Addrs                              []string
	Since, SinceTitle                  string
	Why                                string // the critical reason or the maintenance
	Served, Master                     bool
}

type pageChange struct {
	Time, TimeTitle string
	Rev             int64
	Service, Host   string
	What            string
}

// page is GET /: the status page, or with ?partial=1 its state part alone
// (what the page's script swaps in).
func (a *httpAPI) page(w http.ResponseWriter, r *http.Request) {
	q, err := checkParams(r.URL, []string{"partial"})
	if err == nil {
		err = a.block(r.Context(), q)
	}
	if err != nil {
		status := http.StatusInternalServerError
		if ae := (*apiError)(nil); errors.As(err, &ae) {
			status = ae.status
		}
		http.Error(w, err.Error(), status)
		return
	}
	d := a.pageData(r)
	status := http.StatusOK
	if d.NotLoaded != "" {
		status = http.StatusServiceUnavailable
	}
	name := "status.html"
	if q.Has("partial") {
		name = "state"
	}
	var b bytes.Buffer
	if err := pageTemplate.ExecuteTemplate(&b, name, d); err != nil {
		http.Error(w, "render the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set(indexHeader, strconv.FormatInt(d.Revision, 10))
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// pageData reads everything the page shows, the services at one revision.
func (a *httpAPI) pageData(r *http.Request) pageData {
	now := time.Now()
	view, client := a.viewOfRequest(r)
	d := pageData{
		Zones:      strings.Join(a.rc.cfg.zones, " "),
		WatchState: a.ld.getStatus(),
		Age:        a.ld.watcher.Age().Round(100 * time.Millisecond).String(),
		Client:     client.String(),
		View:       registryViewText(a.viewNames(view)),
		Generated:  now.UTC().Format("15:04:05 UTC"),
		Wait:       pageWait.String(),
	}
	d.Stale = d.WatchState != stateWatching
	if err := a.loaded(); err != nil {
		d.NotLoaded = err.Error()
		return d
	}
	rev, names, services := a.rc.ix.snapshot()
	d.Revision = rev
	rows := 0
	for _, name := range names {
		s := services[name]
		ps := a.pageService(name, s)
		if rows+len(s.all) <= maxPageInstances {
			master, _ := masterOf(s)
			for _, inst := range s.all {
				ps.Instances = append(ps.Instances, pageInstanceOf(a.instance(s, inst, view, master), now))
			}
			rows += len(s.all)
		} else {
			d.Hidden += len(s.all)
		}
		d.Services = append(d.Services, ps)
	}
	for _, c := range a.feed.recent.latest() {
		d.Changes = append(d.Changes, pageChange{
			Time: c.At.UTC().Format("15:04:05"), TimeTitle: c.At.UTC().Format(time.RFC3339),
			Rev: c.Rev, Service: c.Service, Host: c.Host, What: c.What,
		})
	}
	return d
}

func registryViewText(nets []string) string {
	if len(nets) == 0 {
		return "public"
	}
	return strings.Join(nets, ", ")
}

func (a *httpAPI) pageService(name string, s *svcAnswers) pageService {
	sum := summarize(name, s)
	ps := pageService{Name: name, Total: sum.Instances, Served: sum.Served, FailingOpen: sum.FailingOpen}
	if sum.Master != nil {
		ps.Master, ps.Term = sum.Master.Host, sum.Master.Term
	}
	for _, st := range displayStates {
		if n := sum.States[st]; n > 0 {
			ps.States = append(ps.States, stateCount{st, n})
		}
	}
	return ps
}

func pageInstanceOf(j instanceJSON, now time.Time) pageInstance {
	p := pageInstance{
		Host: j.Host, Shard: j.Shard, State: j.State, Network: j.Network, Addrs: j.Addrs,
		Ports: portList(j.Ports), Served: j.Served, Master: j.Master, Why: j.Reason,
	}
	if j.Maintenance != nil {
		p.Why = "maintenance: " + j.Maintenance.Reason
		if j.Maintenance.Who != "" {
			p.Why += " (" + j.Maintenance.Who + ")"
		}
		if j.Maintenance.Until != 0 {
			p.Why += ", until " + time.Unix(j.Maintenance.Until, 0).UTC().Format(time.RFC3339)
		}
	}
	if j.Since > 0 {
		t := time.Unix(j.Since, 0)
		p.Since = "for " + ago(now.Sub(t))
		p.SinceTitle = "since " + t.UTC().Format(time.RFC3339)
	}
	return p
}

// ago writes a duration as a person reads it at a glance: 42s, 7m, 3h, 2d.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// staticFiles are the files under /static/, with their types.
var staticFiles = map[string]string{
	"status.css": "text/css; charset=utf-8",
	"status.js":  "text/javascript; charset=utf-8",
}

// staticFile serves the page's style and script from the embedded folder.
func staticFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	ctype, ok := staticFiles[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := httpUI.ReadFile("httpui/" + name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(b)
}
