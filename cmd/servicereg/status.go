package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rollcall/rollcall/servicereg"
)

const statusHelp = `Usage: servicereg status [-json] [-config FILE] [-socket PATH] [-timeout D]

Asks the running agent for its services and prints, for each: whether its
unit is active, whether it is registered (and the min_active time left when
not yet), the state its record carries and since when, why when critical, a
state change waiting for the state-write rate limit, a drain, a maintenance
in force, and every health check with its last result, how long it took,
how often it changed state and an excerpt of its output. etcd holds only
the states; the checks' output is here and in the agent's /status.

-json prints the agent's /status JSON as it is.

Exit status: 0 done, 1 the agent could not be reached, 2 a bad command line.

Flags:
`

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", statusHelp, stderr)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print the JSON of the agent's /status")
	rest, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "servicereg status: unexpected argument %q; see servicereg status -h\n", rest[0])
		return 2
	}
	path, err := cf.socketPath()
	if err != nil {
		fmt.Fprintf(stderr, "servicereg status: %v\n", err)
		return 1
	}
	cctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	resp, err := servicereg.CallControl(cctx, path, servicereg.ControlRequest{Op: servicereg.OpStatus})
	if err == nil && resp.Status == nil {
		err = fmt.Errorf("the agent at %s sent no status", path)
	}
	if err != nil {
		fmt.Fprintf(stderr, "servicereg status: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(resp.Status); err != nil {
			fmt.Fprintf(stderr, "servicereg status: %v\n", err)
			return 1
		}
		return 0
	}
	renderStatus(stdout, resp.Status)
	return 0
}

// outputMax bounds a check's output excerpt in the table; -json has it whole.
const outputMax = 60

// renderStatus prints st as tables: the services, then each service's
// checks.
func renderStatus(w io.Writer, st *servicereg.Status) {
	maint := "none"
	if m := st.Maintenance; m != nil {
		maint = describeMaintenance(m)
	} else if !st.MaintenanceKnown {
		maint = "not read yet"
	}
	fmt.Fprintf(w, "host %s   etcd: %s   host maintenance: %s\n\n", st.Host, st.Etcd, maint)
	if len(st.Services) == 0 {
		fmt.Fprintln(w, "no services configured")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tUNIT\tACTIVE\tREGISTERED\tSTATE\tSINCE\tNOTES")
	for _, s := range st.Services {
		registered := yesNo(s.Registered)
		if !s.Registered && s.MinActiveLeft > 0 {
			registered = "in " + s.MinActiveLeft.Round(100*time.Millisecond).String()
		}
		state, since := "-", "-"
		if s.Registered {
			state = string(s.State)
			since = time.Unix(s.Since, 0).Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Service, s.Unit, yesNo(s.Active), registered, state, since, notes(s))
	}
	tw.Flush()
	for _, s := range st.Services {
		if len(s.Checks) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s checks:\n", s.Service)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CHECK\tSTATE\tLAST\tAT\tTOOK\tCHANGES\tOUTPUT")
		for _, c := range s.Checks {
			last, at, took, out := "-", "-", "-", ""
			if c.Last != nil {
				last = string(c.Last.State)
				at = c.Last.At.Local().Format("15:04:05")
				took = c.Last.Duration.Round(100 * time.Microsecond).String()
				out = excerpt(c.Last.Output)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.Check, c.State, last, at, took, c.Transitions, out)
		}
		tw.Flush()
	}
}

// notes says what else is true of a service: why it is critical, a change
// waiting for the rate limit, a drain, a maintenance.
func notes(s servicereg.InstanceStatus) string {
	var n []string
	if s.Reason != "" {
		n = append(n, s.Reason)
	}
	if p := s.Pending; p != nil {
		n = append(n, "turning "+string(p.State)+" (waiting for the state-write limit)")
	}
	if s.Drained {
		n = append(n, "drained")
	}
	if s.Maintenance != nil {
		n = append(n, "maintenance: "+describeMaintenance(s.Maintenance))
	}
	if s.MasterElection && !s.InService && s.Registered {
		n = append(n, "not campaigning")
	}
	if len(n) == 0 {
		return "-"
	}
	return strings.Join(n, "; ")
}

func describeMaintenance(m *servicereg.MaintenanceStatus) string {
	d := m.Reason
	if m.Who != "" {
		d += " (" + m.Who + ")"
	}
	if m.Until != 0 {
		d += " until " + time.Unix(m.Until, 0).Local().Format("2006-01-02 15:04:05")
	}
	if m.Scope == "host" {
		d += " [whole host]"
	}
	return d
}

// excerpt is the first line of a check's output, cut to outputMax.
func excerpt(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(s); len(r) > outputMax {
		s = string(r[:outputMax]) + "..."
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
