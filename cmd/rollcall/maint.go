package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/internal/inspect"
	"github.com/rollcall/rollcall/registry"
)

const maintHelp = `Usage:
  rollcall maint enable HOST [SERVICE] -reason TEXT [-for DURATION] [-who NAME] [flags]
  rollcall maint disable HOST [SERVICE] [flags]
  rollcall maint ls [-o json] [flags]

Takes a host (every instance on it), or one service's instance on a host,
out of DNS on purpose, and puts it back. While in maintenance an instance
is left out of its service's names (<service>, its ports and shards), even
when the service fails open; <host>.<service> still answers, with TXT
"state=maintenance". rollcall ls and rollcall status show it.

enable writes P/maintenance/HOST (or P/maintenance/HOST/SERVICE) with the
reason, who and when it ends; enabling again replaces it. -reason is
required: whoever looks next needs to know why. With -for the record ends
by itself after that long (DNS takes the instances back at that second);
without it, it lasts until disable. disable deletes it. ls lists every
record, ended ones too.

Hosts' etcd credentials cannot write maintenance records (deploy/rbac.sh
grants hosts only their own subtree and elections): run this with an
operator's (admin) credentials, -cert/-key/-cacert or -user.

Flags (after the command word, before or after HOST and SERVICE):
`

// runMaint runs `rollcall maint`.
func runMaint(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, maintHelp)
		fmt.Fprintln(stderr, "\nrollcall maint: say enable, disable or ls")
		return exitUsage
	}
	action, rest := args[0], args[1:]
	switch action {
	case "enable", "disable", "ls":
	case "-h", "-help", "--help", "help":
		fs := newFlagSet("maint", maintHelp, stderr)
		maintFlags(fs, "enable")
		fs.Usage()
		return exitOK
	default:
		fmt.Fprintf(stderr, "rollcall maint: unknown action %q: say enable, disable or ls (rollcall maint -h)\n", action)
		return exitUsage
	}
	fs := newFlagSet("maint "+action, maintHelp, stderr)
	m := maintFlags(fs, action)
	names, code, ok := parseInterleaved(fs, rest)
	if !ok {
		return code
	}
	name := "rollcall maint " + action
	if action == "ls" {
		if len(names) > 0 {
			fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, names[0])
			return exitUsage
		}
		return show(ctx, showing{name: "maint ls", etcd: &m.etcd, output: m.output, render: inspect.RenderMaint}, stdout, stderr)
	}
	if len(names) == 0 || len(names) > 2 {
		fmt.Fprintf(stderr, "%s: give HOST, or HOST SERVICE (got %d names)\n", name, len(names))
		return exitUsage
	}
	host, svc := names[0], ""
	if len(names) == 2 {
		svc = names[1]
	}
	if err := registry.CheckName("host", host); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	if svc != "" {
		if err := registry.CheckName("service", svc); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return exitUsage
		}
	}
	cfg, keys, err := m.etcd.config()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	var value []byte
	if action == "enable" {
		if value, err = m.record(time.Now()); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return exitUsage
		}
	}

	cli, err := etcdconn.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitFail
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, m.etcd.timeout)
	defer cancel()
	t := maintTarget{cli: cli, keys: keys, host: host, svc: svc, stdout: stdout, stderr: stderr}
	if action == "enable" {
		err = t.enable(ctx, value)
	} else {
		err = t.disable(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, explainMaintErr(ctx, err, keys, cfg))
		return exitFail
	}
	return exitOK
}

// maintOptions are the flags of one maint action.
type maintOptions struct {
	etcd   etcdFlags
	reason string
	who    string
	dur    time.Duration
	output string
}

// maintFlags registers the flags of action on fs.
func maintFlags(fs *flag.FlagSet, action string) *maintOptions {
	m := &maintOptions{etcd: etcdFlags{dash: "-", withUser: true, withTimeout: true}}
	m.etcd.register(fs)
	switch action {
	case "enable":
		fs.StringVar(&m.reason, "reason", "", "why it is out (required; at most 256 bytes, one line): shown by rollcall status")
		fs.DurationVar(&m.dur, "for", 0, "end by itself after this long, e.g. 2h (default: until rollcall maint disable)")
		fs.StringVar(&m.who, "who", defaultWho(), "who put it in maintenance")
	case "ls":
		fs.StringVar(&m.output, "o", string(inspect.FormatTable), "output format: table or json")
	}
	return m
}

// defaultWho is $USER@hostname: who runs the command, on which machine.
func defaultWho() string {
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return user + "@" + h
	}
	return user
}

// record checks the enable flags and returns the record's value, with
// its end -for after now (rounded up to a whole second).
func (m *maintOptions) record(now time.Time) ([]byte, error) {
	if strings.TrimSpace(m.reason) == "" {
		return nil, errors.New(`-reason is required: say why it is out, for whoever looks next, e.g. -reason "kernel upgrade, back by 14:00 (OPS-123)"`)
	}
	if m.dur < 0 {
		return nil, fmt.Errorf("-for %v is negative: give how long it lasts, e.g. -for 2h, or leave it out to last until disable", m.dur)
	}
	rec := registry.Maintenance{Reason: m.reason, Who: m.who}
	if m.dur > 0 {
		end := now.Add(m.dur)
		rec.Until = end.Unix()
		if end.Nanosecond() > 0 {
			rec.Until++
		}
	}
	value, err := registry.EncodeMaintenance(&rec)
	if err != nil {
		return nil, fmt.Errorf("-reason or -who: %w", err)
	}
	return value, nil
}

// parseInterleaved parses args into fs, taking the words that are not flags
// (HOST, SERVICE) wherever they stand: "enable h1 web -reason x" and
// "enable -reason x h1 web" alike.
func parseInterleaved(fs *flag.FlagSet, args []string) (names []string, code int, ok bool) {
	for {
		if code, ok := parseFlags(fs, args); !ok {
			return nil, code, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return names, exitOK, true
		}
		names = append(names, rest[0])
		args = rest[1:]
	}
}

// maintTarget is the host, or instance, a maint action is about.
type maintTarget struct {
	cli            *clientv3.Client
	keys           registry.Keys
	host, svc      string
	stdout, stderr io.Writer
}

// what names the target in messages.
func (t *maintTarget) what() string {
	if t.svc == "" {
		return "host " + t.host + " (every instance on it)"
	}
	return t.svc + " on " + t.host
}

// enable writes the maintenance record, and says what it replaced and
// whether anything it covers is registered now (a typo in HOST would
// otherwise go unnoticed).
func (t *maintTarget) enable(ctx context.Context, value []byte) error {
	key := t.keys.Maintenance(t.host, t.svc)
	resp, err := t.cli.Put(ctx, key, string(value), clientv3.WithPrevKV())
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	k := registry.Key{Kind: registry.KindMaintenance, Host: t.host, Service: t.svc}
	rec, _ := registry.DecodeMaintenance(k, value)
	fmt.Fprintf(t.stdout, "maintenance on for %s: %q%s, %s\n", t.what(), rec.Reason, byWho(rec.Who), endText(rec.Until))
	if resp.PrevKv != nil {
		if prev, err := registry.DecodeMaintenance(k, resp.PrevKv.Value); err == nil {
			fmt.Fprintf(t.stdout, "(replaced: %q%s, %s)\n", prev.Reason, byWho(prev.Who), endText(prev.Until))
		} else {
			fmt.Fprintf(t.stdout, "(replaced a malformed record)\n")
		}
	}
	check := t.keys.HostDir(t.host)
	if t.svc != "" {
		check = t.keys.Instance(t.host, t.svc)
	}
	got, err := t.cli.Get(ctx, check, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err == nil && got.Count == 0 {
		fmt.Fprintf(t.stderr, "note: nothing of %s is registered now (no key under %s): is the name right? The maintenance applies to what registers later.\n", t.what(), check)
	}
	fmt.Fprintf(t.stdout, "DNS leaves it out of service names within a second; rollcall maint disable %s puts it back.\n", strings.TrimSpace(t.host+" "+t.svc))
	return nil
}

// disable deletes the maintenance record, and says what still holds the
// target out: the host's record after an instance's is gone, or the
// instances' own after the host's.
func (t *maintTarget) disable(ctx context.Context) error {
	key := t.keys.Maintenance(t.host, t.svc)
	resp, err := t.cli.Delete(ctx, key, clientv3.WithPrevKV())
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if resp.Deleted == 0 {
		fmt.Fprintf(t.stdout, "%s was not in maintenance (no key %s): nothing to do\n", t.what(), key)
	} else {
		k := registry.Key{Kind: registry.KindMaintenance, Host: t.host, Service: t.svc}
		was := "a malformed record"
		if prev, err := registry.DecodeMaintenance(k, resp.PrevKvs[0].Value); err == nil {
			was = fmt.Sprintf("%q%s", prev.Reason, byWho(prev.Who))
		}
		fmt.Fprintf(t.stdout, "maintenance off for %s (was: %s)\n", t.what(), was)
	}
	// The host's own record after an instance's, or the instances' own
	// after the host's.
	check, opts := t.keys.Maintenance(t.host, ""), []clientv3.OpOption{clientv3.WithKeysOnly()}
	if t.svc == "" {
		check += "/"
		opts = append(opts, clientv3.WithPrefix())
	}
	got, err := t.cli.Get(ctx, check, opts...)
	if err != nil {
		return nil // the delete is done; this was only a hint
	}
	for _, kv := range got.Kvs {
		if pk, err := t.keys.Parse(string(kv.Key)); err == nil && pk.Kind == registry.KindMaintenance {
			if pk.Service == "" {
				fmt.Fprintf(t.stdout, "host %s is still in maintenance as a whole: rollcall maint disable %s\n", pk.Host, pk.Host)
			} else {
				fmt.Fprintf(t.stdout, "%s on %s is still in maintenance of its own: rollcall maint disable %s %s\n", pk.Service, pk.Host, pk.Host, pk.Service)
			}
		}
	}
	return nil
}

func byWho(who string) string {
	if who == "" {
		return ""
	}
	return " by " + who
}

// endText says when a maintenance record ends.
func endText(until int64) string {
	if until == 0 {
		return "until disabled"
	}
	return "until " + time.Unix(until, 0).UTC().Format(time.RFC3339)
}

// explainMaintErr says what to do about a failed write: a refusal is
// about credentials (hosts may not write maintenance records), anything
// else about reaching etcd.
func explainMaintErr(ctx context.Context, err error, keys registry.Keys, cfg etcdconn.Config) error {
	if etcdconn.IsDenied(err) {
		return fmt.Errorf("etcd refused the write: these credentials may not write %s: run rollcall maint with admin credentials (-cert/-key/-cacert or -user); hosts cannot (deploy/rbac.sh): %w", keys.MaintenanceDir(), err)
	}
	// clientv3 hides why it cannot connect ("context deadline exceeded");
	// a TLS mismatch is worth naming.
	if diag := etcdconn.Diagnose(context.WithoutCancel(ctx), cfg); diag != nil {
		return fmt.Errorf("%w (%v)", err, diag)
	}
	return fmt.Errorf("%w (is etcd running at %s? -endpoints or $%s choose another)", err, strings.Join(cfg.Endpoints, ","), EnvEndpoints)
}
