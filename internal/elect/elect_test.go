package elect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

const wait = 20 * time.Second

// run is one Run in the background.
type run struct {
	stdout, stderr testkit.Buffer
	cancel         context.CancelFunc
	done           chan struct{}
	code           int
}

// start runs o with outputs of its own until the test ends.
func start(t *testing.T, o Options) *run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{cancel: cancel, done: make(chan struct{})}
	o.Stdout, o.Stderr = &r.stdout, &r.stderr
	go func() {
		defer close(r.done)
		r.code = Run(ctx, o)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout.String(), r.stderr.String())
		}
	})
	return r
}

// exit waits for Run to return and gives its exit code.
func (r *run) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(wait):
		t.Fatalf("rollcall elect still running after %v\nstdout:\n%s\nstderr:\n%s", wait, r.stdout.String(), r.stderr.String())
	}
	return 0
}

func (r *run) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

func (r *run) waitOutput(t *testing.T, s string) {
	t.Helper()
	testkit.Eventually(t, wait, "stdout has "+strconv.Quote(s)+"; stderr: "+r.stderr.String(), func() bool {
		return strings.Contains(r.stdout.String(), s)
	})
}

// opts are the options of host's candidacy for service, running cmd, with
// a client of its own, a short TTL and grace, under the default prefix.
func opts(t *testing.T, e *testkit.Etcd, host, service string, cmd ...string) Options {
	return Options{
		Client:  e.Client(t),
		Keys:    registry.MustKeys("/rollcall"),
		Service: service,
		Host:    host,
		TTL:     2 * time.Second,
		Grace:   5 * time.Second,
		Cmd:     cmd,
	}
}

var termRE = regexp.MustCompile(`term=(\d+)`)

func termOf(t *testing.T, out string) int64 {
	t.Helper()
	m := termRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no term=N in %q", out)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

func TestRunsCmdWithEnvAndExitCode(t *testing.T) {
	e := testkit.StartEtcd(t)
	r := start(t, opts(t, e, "host-a", "web", "sh", "-c",
		`echo "service=$ROLLCALL_SERVICE host=$ROLLCALL_HOST term=$ROLLCALL_TERM"; exit 7`))
	if code := r.exit(t); code != 7 {
		t.Fatalf("exit code %d, want CMD's 7; stderr:\n%s", code, r.stderr.String())
	}
	out := r.stdout.String()
	if !strings.Contains(out, "service=web host=host-a term=") || termOf(t, out) <= 0 {
		t.Fatalf("CMD saw %q", out)
	}
	// It resigned: nobody is master now.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := election.CurrentLeader(ctx, e.Client(t), registry.MustKeys("/rollcall"), "web"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("after CMD exited: %v, want no leader", err)
	}
}

func TestCmdKilledBySignalExitCode(t *testing.T) {
	e := testkit.StartEtcd(t)
	r := start(t, opts(t, e, "host-a", "web", "sh", "-c", `kill -KILL $$`))
	if code := r.exit(t); code != 128+9 {
		t.Fatalf("exit code %d, want 137", code)
	}
}

// TestLosingStopsCmd: when the election key is deleted or the lease revoked,
// CMD gets SIGTERM (or SIGKILL after --grace if it ignores SIGTERM) and
// rollcall elect exits ExitLost.
func TestLosingStopsCmd(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	keys := registry.MustKeys("/rollcall")
	for _, tc := range []struct {
		name    string
		script  string
		lose    func(t *testing.T, l election.Leader)
		wantOut string
	}{
		{
			name:   "key deleted",
			script: `trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.1; done`,
			lose: func(t *testing.T, l election.Leader) {
				testkit.Delete(t, cli, l.Key)
			},
			wantOut: "got-term",
		},
		{
			name:   "lease revoked",
			script: `trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.1; done`,
			lose: func(t *testing.T, l election.Leader) {
				k, err := keys.Parse(l.Key)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(k.Lease)); err != nil {
					t.Fatal(err)
				}
			},
			wantOut: "got-term",
		},
		{
			name:   "SIGTERM ignored",
			script: `trap '' TERM; echo started; while :; do sleep 0.1; done; echo never`,
			lose: func(t *testing.T, l election.Leader) {
				testkit.Delete(t, cli, l.Key)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(t, e, "host-a", "svc", "sh", "-c", tc.script)
			o.Grace = 300 * time.Millisecond
			r := start(t, o)
			r.waitOutput(t, "started")
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			l, err := election.CurrentLeader(ctx, cli, keys, "svc")
			if err != nil || l.Host != "host-a" {
				t.Fatalf("leader %+v, %v; want host-a", l, err)
			}
			tc.lose(t, l)
			if code := r.exit(t); code != ExitLost {
				t.Fatalf("exit code %d, want %d", code, ExitLost)
			}
			if !strings.Contains(r.stdout.String(), tc.wantOut) || strings.Contains(r.stdout.String(), "never") {
				t.Fatalf("CMD output %q, want %q", r.stdout.String(), tc.wantOut)
			}
			if !strings.Contains(r.stderr.String(), "lost master of svc") {
				t.Fatalf("stderr does not say why: %s", r.stderr.String())
			}
		})
	}
}

// TestSecondTakesOver: a second `rollcall elect` waits while the first's CMD
// runs and takes over, with a larger term, as soon as it exits.
func TestSecondTakesOver(t *testing.T) {
	e := testkit.StartEtcd(t)
	release := filepath.Join(t.TempDir(), "release")
	first := start(t, opts(t, e, "host-a", "web", "sh", "-c",
		`echo "first term=$ROLLCALL_TERM"; while [ ! -e "$0" ]; do sleep 0.05; done`, release))
	first.waitOutput(t, "first term=")
	second := start(t, opts(t, e, "host-b", "web", "sh", "-c", `echo "second term=$ROLLCALL_TERM"`))
	testkit.Eventually(t, wait, "second campaigning", func() bool {
		return strings.Contains(second.stderr.String(), "campaigning")
	})
	// Its candidacy is in etcd behind the first's.
	cli := e.Client(t)
	testkit.Eventually(t, wait, "second's candidacy written", func() bool {
		r, err := cli.Get(context.Background(), "/rollcall/elections/web/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 2
	})
	if !second.running() || second.stdout.String() != "" {
		t.Fatalf("second ran while first was master: %q", second.stdout.String())
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := first.exit(t); code != 0 {
		t.Fatalf("first exit code %d", code)
	}
	if code := second.exit(t); code != 0 {
		t.Fatalf("second exit code %d", code)
	}
	t1, t2 := termOf(t, first.stdout.String()), termOf(t, second.stdout.String())
	if t2 <= t1 {
		t.Fatalf("second's term %d not larger than first's %d", t2, t1)
	}
}

// TestSignalStopsCmd: cancelling (as SIGTERM does) stops CMD gracefully,
// resigns, and exits with CMD's code.
func TestSignalStopsCmd(t *testing.T) {
	e := testkit.StartEtcd(t)
	r := start(t, opts(t, e, "host-a", "web", "sh", "-c",
		`trap 'echo got-term; exit 3' TERM; echo started; while :; do sleep 0.1; done`))
	r.waitOutput(t, "started")
	r.cancel()
	if code := r.exit(t); code != 3 {
		t.Fatalf("exit code %d, want CMD's 3", code)
	}
	if !strings.Contains(r.stdout.String(), "got-term") {
		t.Fatalf("CMD did not get SIGTERM: %q", r.stdout.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := election.CurrentLeader(ctx, e.Client(t), registry.MustKeys("/rollcall"), "web"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("after stop: %v, want no leader", err)
	}
}

func TestCmdNotFound(t *testing.T) {
	e := testkit.StartEtcd(t)
	r := start(t, opts(t, e, "host-a", "web", "/nonexistent/cmd"))
	if code := r.exit(t); code != ExitNoExec {
		t.Fatalf("exit code %d, want %d", code, ExitNoExec)
	}
}

// TestNoCmd: without CMD there is nothing to run as master, so Run does not
// campaign.
func TestNoCmd(t *testing.T) {
	var stderr strings.Builder
	if code := Run(context.Background(), Options{Service: "web", Host: "host-a", Stderr: &stderr}); code != ExitUsage {
		t.Fatalf("exit code %d, want %d", code, ExitUsage)
	}
	if !strings.Contains(stderr.String(), "missing CMD") {
		t.Fatalf("stderr %q does not say what is missing", stderr.String())
	}
}
