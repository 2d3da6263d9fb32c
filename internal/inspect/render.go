package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rollcall/rollcall/registry"
)

// Format is an output format of ls and status.
type Format string

// The output formats.
const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
)

// ParseFormat checks the -o flag's value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatTable, FormatJSON:
		return Format(s), nil
	}
	return "", fmt.Errorf("output format %q is not known: use -o table or -o json", s)
}

// LsView is the JSON document of `rollcall ls -o json`.
type LsView struct {
	Prefix   string    `json:"prefix"`
	Revision int64     `json:"revision"`
	Services []Service `json:"services"`
}

// StatusView is the JSON document of `rollcall status -o json`.
type StatusView struct {
	Prefix      string          `json:"prefix"`
	Revision    int64           `json:"revision"`
	Hosts       []Host          `json:"hosts"`
	Masters     []MasterRow     `json:"masters"`
	Instances   []InstanceState `json:"instances"`
	Maintenance []Maintenance   `json:"maintenance"`
	Counts      Counts          `json:"counts"`
	Skipped     []Skipped       `json:"skipped"`
}

// InstanceState is one instance's health in StatusView: every instance,
// by service then host.
type InstanceState struct {
	Service     string       `json:"service"`
	Host        string       `json:"host"`
	State       string       `json:"state"`
	Since       int64        `json:"since,omitempty"`
	Reason      string       `json:"reason,omitempty"`
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	InService   bool         `json:"in_service"`
}

// MasterRow is one service's election state in StatusView.
type MasterRow struct {
	Service    string `json:"service"`
	Host       string `json:"host"`
	Term       int64  `json:"term"`
	Lease      string `json:"lease"`
	Candidates int    `json:"candidates"`
}

// Ls returns the view `rollcall ls` prints.
func (s *Snapshot) Ls() LsView {
	return LsView{Prefix: s.Prefix, Revision: s.Revision, Services: s.Services}
}

// Status returns the view `rollcall status` prints.
func (s *Snapshot) Status() StatusView {
	v := StatusView{Prefix: s.Prefix, Revision: s.Revision, Hosts: s.Hosts, Masters: []MasterRow{}, Instances: []InstanceState{},
		Maintenance: s.Maintenance, Counts: s.Counts(), Skipped: s.Skipped}
	if v.Maintenance == nil {
		v.Maintenance = []Maintenance{}
	}
	for _, svc := range s.Services {
		for _, in := range svc.Instances {
			v.Instances = append(v.Instances, InstanceState{Service: svc.Name, Host: in.Host, State: in.State, Since: in.Since,
				Reason: in.Reason, Maintenance: in.Maintenance, InService: in.InService})
		}
	}
	for _, svc := range s.Services {
		if svc.Master == nil {
			continue
		}
		v.Masters = append(v.Masters, MasterRow{
			Service: svc.Name, Host: svc.Master.Host, Term: svc.Master.Term,
			Lease: svc.Master.Lease, Candidates: svc.Candidates,
		})
	}
	return v
}

// RenderLs writes the services and their instances.
func RenderLs(w io.Writer, s *Snapshot, f Format) error {
	if f == FormatJSON {
		return writeJSON(w, s.Ls())
	}
	if len(s.Services) == 0 {
		_, err := fmt.Fprintf(w, "no services registered under %s/ (revision %d)\n", s.Prefix, s.Revision)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "SERVICE\tHOST\tSHARD\tSTATE\tADDRESSES\tPORTS\tROLE\tTTL")
	for _, svc := range s.Services {
		if len(svc.Instances) == 0 {
			// Someone campaigns (e.g. `rollcall elect`) for a service
			// that no host registers: show it, so the master is not lost.
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t%s\t-\n", svc.Name, noInstanceRole(svc))
			continue
		}
		masterShown := false
		for _, in := range svc.Instances {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", svc.Name, in.Host, dash(in.Shard), stateCell(svc, in, s.ReadAt),
				addrsCell(in.Addrs, in.AddrsFrom), portsCell(in.Ports), roleCell(svc, in), ttlCell(in.Lease, in.TTL, 0))
			masterShown = masterShown || in.Role == "master"
		}
		if svc.Master != nil && !masterShown {
			// The master campaigns from a host without an instance
			// (DNS then serves no master name): say so rather than hide it.
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\tmaster (term %d), no instance\t-\n", svc.Name, masterHost(svc.Master.Host), svc.Master.Term)
		}
	}
	return tw.Flush()
}

// stateCell is an instance's state in ls: "passing", "warning for 5m",
// "critical for 2h (served: fail open)", "maintenance".
func stateCell(svc Service, in Instance, now time.Time) string {
	st := in.ShownState()
	if st == StateMaintenance {
		return st
	}
	if in.Since > 0 && st != string(registry.StatePassing) {
		st += " for " + ago(now, in.Since)
	}
	if svc.FailingOpen && !in.InService && in.State == string(registry.StateCritical) {
		st += " (served: fail open)"
	}
	return st
}

// ago is how long before now the Unix second t was, to the largest unit:
// "42s", "5m", "3h", "4d" (t after now, a clock skew between hosts, is "0s").
func ago(now time.Time, t int64) string {
	d := now.Sub(time.Unix(t, 0))
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// untilCell spells a maintenance record's end: "until disabled",
// "until 2026-12-02T09:00:00Z (in 1h)", "ended 2026-... (5m ago; counts as absent)".
func untilCell(m Maintenance, now time.Time) string {
	if m.Until == 0 {
		return "until disabled"
	}
	at := time.Unix(m.Until, 0).UTC().Format(time.RFC3339)
	if !m.Active {
		return "ended " + at + " (" + ago(now, m.Until) + " ago; counts as absent)"
	}
	return "until " + at + " (in " + ago(time.Unix(m.Until, 0), now.Unix()) + ")"
}

// RenderStatus writes hosts with their leases, masters with their terms, the
// totals and the keys that were skipped.
func RenderStatus(w io.Writer, s *Snapshot, f Format) error {
	v := s.Status()
	if f == FormatJSON {
		return writeJSON(w, v)
	}
	tw := newTable(w)
	if len(v.Hosts) == 0 {
		fmt.Fprintf(tw, "no hosts registered under %s/\n", s.Prefix)
	} else {
		fmt.Fprintln(tw, "HOST\tLEASE\tTTL\tSERVICES\tADDRESSES")
		for _, h := range v.Hosts {
			addrs := addrsCell(h.Addrs, "host")
			if !h.Record {
				addrs = "(no valid host record)"
			}
			name := h.Name
			if h.Maintenance != nil {
				name += " (maintenance)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, dash(h.Lease), ttlCell(h.Lease, h.TTL, h.GrantedTTL),
				dash(strings.Join(h.Services, ",")), addrs)
		}
	}
	// Every instance not passing, with why; the counts say how many pass.
	var notPassing []InstanceState
	for _, in := range v.Instances {
		if in.Maintenance != nil || in.State != string(registry.StatePassing) {
			notPassing = append(notPassing, in)
		}
	}
	if len(notPassing) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "SERVICE\tHOST\tSTATE\tSINCE\tWHY")
		for _, in := range notPassing {
			state, why := in.State, in.Reason
			if in.Maintenance != nil {
				state, why = StateMaintenance, maintWhy(*in.Maintenance)
			} else if !in.InService && failingOpen(s, in.Service) && in.State == string(registry.StateCritical) {
				state += " (served: fail open)"
			}
			since := "-"
			if in.Since > 0 {
				since = time.Unix(in.Since, 0).UTC().Format(time.RFC3339) + " (" + ago(s.ReadAt, in.Since) + " ago)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Service, in.Host, state, since, dash(oneLine(why)))
		}
	}
	if len(v.Maintenance) > 0 {
		fmt.Fprintln(tw)
		maintTable(tw, v.Maintenance, s.ReadAt)
	}
	fmt.Fprintln(tw)
	if len(v.Masters) == 0 {
		fmt.Fprintln(tw, "no elections")
	} else {
		fmt.Fprintln(tw, "SERVICE\tMASTER\tTERM\tLEASE\tCANDIDATES")
		for _, m := range v.Masters {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", m.Service, masterHost(m.Host), m.Term, m.Lease, m.Candidates)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "revision %d: %s\n", v.Revision, v.Counts)
	if len(v.Skipped) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "SKIPPED KEY\tREASON")
		for _, sk := range v.Skipped {
			fmt.Fprintf(tw, "%s\t%s\n", sk.Key, oneLine(sk.Reason))
		}
	}
	return tw.Flush()
}

// MaintView is the JSON document of `rollcall maint ls -o json`.
type MaintView struct {
	Prefix      string        `json:"prefix"`
	Revision    int64         `json:"revision"`
	Maintenance []Maintenance `json:"maintenance"`
}

// RenderMaint writes every maintenance record, expired ones too.
func RenderMaint(w io.Writer, s *Snapshot, f Format) error {
	v := MaintView{Prefix: s.Prefix, Revision: s.Revision, Maintenance: s.Maintenance}
	if v.Maintenance == nil {
		v.Maintenance = []Maintenance{}
	}
	if f == FormatJSON {
		return writeJSON(w, v)
	}
	if len(v.Maintenance) == 0 {
		_, err := fmt.Fprintf(w, "nothing in maintenance under %s/ (revision %d)\n", s.Prefix, s.Revision)
		return err
	}
	tw := newTable(w)
	maintTable(tw, v.Maintenance, s.ReadAt)
	return tw.Flush()
}

// maintTable writes maintenance records as a table.
func maintTable(tw *tabwriter.Writer, ms []Maintenance, now time.Time) {
	fmt.Fprintln(tw, "MAINTENANCE HOST\tSERVICE\tREASON\tWHO\tUNTIL")
	for _, m := range ms {
		svc := m.Service
		if svc == "" {
			svc = "(whole host)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Host, svc, oneLine(m.Reason), dash(m.Who), untilCell(m, now))
	}
}

// maintWhy says which maintenance record holds an instance out, and why.
func maintWhy(m Maintenance) string {
	what := "host " + m.Host
	if m.Service != "" {
		what = m.Service + " on " + m.Host
	}
	who := ""
	if m.Who != "" {
		who = ", by " + m.Who
	}
	return m.Reason + " (maintenance of " + what + who + ")"
}

func failingOpen(s *Snapshot, service string) bool {
	for _, svc := range s.Services {
		if svc.Name == service {
			return svc.FailingOpen
		}
	}
	return false
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// addrsCell spells addresses as "public=a,b vpn0=c", the default network
// first.
func addrsCell(a map[string][]string, from string) string {
	if from == "none" {
		return "(none: no host record)"
	}
	if len(a) == 0 {
		return "-"
	}
	nws := make([]string, 0, len(a))
	for nw := range a {
		nws = append(nws, nw)
	}
	sort.Slice(nws, func(i, j int) bool {
		if (nws[i] == registry.PublicNetwork) != (nws[j] == registry.PublicNetwork) {
			return nws[i] == registry.PublicNetwork
		}
		return nws[i] < nws[j]
	})
	parts := make([]string, len(nws))
	for i, nw := range nws {
		parts[i] = nw + "=" + strings.Join(a[nw], ",")
	}
	return strings.Join(parts, " ")
}

func portsCell(ps []registry.Port) string {
	if len(ps) == 0 {
		return "-"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Name + ":" + strconv.Itoa(p.Port) + "/" + p.Proto
	}
	return strings.Join(parts, ",")
}

func roleCell(svc Service, in Instance) string {
	switch in.Role {
	case "master":
		return "master (term " + strconv.FormatInt(svc.Master.Term, 10) + ")"
	case "":
		return "-"
	}
	return in.Role
}

func noInstanceRole(svc Service) string {
	if svc.Master == nil {
		return "-"
	}
	return "master " + masterHost(svc.Master.Host) + " (term " + strconv.FormatInt(svc.Master.Term, 10) + ")"
}

func masterHost(h string) string {
	if h == "" {
		return "(malformed)"
	}
	return h
}

// ttlCell spells a lease's time left: "8s", "8s/10s" with the granted TTL,
// "expired", or "none" for a key without a lease (it never expires, which an
// agent never does: someone wrote it by hand).
func ttlCell(lease string, ttl *int64, granted int64) string {
	switch {
	case lease == "":
		return "none"
	case ttl == nil:
		return "?"
	case *ttl < 0:
		return "expired"
	case granted > 0:
		return fmt.Sprintf("%ds/%ds", *ttl, granted)
	}
	return fmt.Sprintf("%ds", *ttl)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
