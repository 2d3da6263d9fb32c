package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

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
	Prefix   string      `json:"prefix"`
	Revision int64       `json:"revision"`
	Hosts    []Host      `json:"hosts"`
	Masters  []MasterRow `json:"masters"`
	Counts   Counts      `json:"counts"`
	Skipped  []Skipped   `json:"skipped"`
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
	v := StatusView{Prefix: s.Prefix, Revision: s.Revision, Hosts: s.Hosts, Masters: []MasterRow{}, Counts: s.Counts(), Skipped: s.Skipped}
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
	fmt.Fprintln(tw, "SERVICE\tHOST\tSHARD\tADDRESSES\tPORTS\tROLE\tTTL")
	for _, svc := range s.Services {
		if len(svc.Instances) == 0 {
			// Someone campaigns (e.g. `rollcall elect`) for a service
			// that no host registers: show it, so the master is not lost.
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%s\t-\n", svc.Name, noInstanceRole(svc))
			continue
		}
		masterShown := false
		for _, in := range svc.Instances {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", svc.Name, in.Host, dash(in.Shard),
				addrsCell(in.Addrs, in.AddrsFrom), portsCell(in.Ports), roleCell(svc, in), ttlCell(in.Lease, in.TTL, 0))
			masterShown = masterShown || in.Role == "master"
		}
		if svc.Master != nil && !masterShown {
			// The master campaigns from a host without an instance
			// (DNS then serves no master name): say so rather than hide it.
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\tmaster (term %d), no instance\t-\n", svc.Name, masterHost(svc.Master.Host), svc.Master.Term)
		}
	}
	return tw.Flush()
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, dash(h.Lease), ttlCell(h.Lease, h.TTL, h.GrantedTTL),
				dash(strings.Join(h.Services, ",")), addrs)
		}
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
