package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/test/testkit"
)

// procCluster is an etcd cluster whose members are processes of their own
// (bench/etcdmember, built from go.mod's etcd server), not goroutines of
// this program: the scale parts read etcd's CPU time from /proc, apart from
// the simulated readers and agents that load it from this process.
//
// Each member listens for clients on two ports. The readers' port is the
// one the members advertise and the simulated DNS readers use; the admin
// port is the writer's and the benchmark's own (metrics, marker writes,
// compaction). Starting the members with the readers' port closed is an
// outage for the readers alone, during which the cluster still takes
// writes and compactions: the real way to make every reader's watch miss
// revisions that etcd then compacts.
type procCluster struct {
	bin     string // the etcdmember binary
	cpu     string // CPU list for taskset, "" for none
	members []*procMember
}

// procMember is one member: its folder, ports and current process.
type procMember struct {
	name, dir    string
	readerURL    string // advertised; closed while readers are locked out
	adminURL     string
	peerURL      string
	proc         *testkit.Process // nil while stopped
	cpuOfStopped time.Duration    // CPU time of the member's earlier processes
	started      int              // processes started so far
}

// buildEtcdMember builds bench/etcdmember into dir and returns its path.
// The module path works from any folder of the module (make bench runs at
// the root, go test in bench/).
func buildEtcdMember(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "etcdmember")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/rollcall/rollcall/bench/etcdmember")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build bench/etcdmember: %w: %s", err, b)
	}
	return out, nil
}

// newProcCluster starts an n-member cluster in folders under dir, each
// member pinned to cpu ("" for no pinning). Close stops it.
func newProcCluster(ctx context.Context, dir string, n int, cpu string) (_ *procCluster, err error) {
	bin, err := buildEtcdMember(ctx, dir)
	if err != nil {
		return nil, err
	}
	c := &procCluster{bin: bin, cpu: cpu}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		m := &procMember{name: fmt.Sprintf("m%d", i)}
		if m.dir, err = os.MkdirTemp(dir, "etcd-"+m.name+"-"); err != nil {
			return nil, err
		}
		for _, u := range []*string{&m.readerURL, &m.adminURL, &m.peerURL} {
			p, err := testkit.TryFreePort()
			if err != nil {
				return nil, err
			}
			*u = fmt.Sprintf("http://127.0.0.1:%d", p)
		}
		c.members = append(c.members, m)
	}
	if err := c.Start(ctx, true); err != nil {
		return nil, err
	}
	return c, nil
}

// memberConfig is a member's etcd config file: readers' port open or not.
func (c *procCluster) memberConfig(m *procMember, readersOpen bool, state string) string {
	var initial []string
	for _, x := range c.members {
		initial = append(initial, x.name+"="+x.peerURL)
	}
	listen := m.adminURL
	if readersOpen {
		listen = m.readerURL + "," + m.adminURL
	}
	return fmt.Sprintf(`name: %s
data-dir: %s
listen-client-urls: %s
advertise-client-urls: %s
listen-peer-urls: %s
initial-advertise-peer-urls: %s
initial-cluster: %s
initial-cluster-token: rollcall-bench
initial-cluster-state: %s
logger: zap
log-level: error
log-outputs: [stderr]
`, m.name, filepath.Join(m.dir, "data"), listen, m.readerURL, m.peerURL, m.peerURL, strings.Join(initial, ","), state)
}

// Start starts every stopped member at once (a member is ready only once a
// quorum is up) and waits until all serve clients. readersOpen false keeps
// the readers' ports closed.
func (c *procCluster) Start(ctx context.Context, readersOpen bool) error {
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, m := range c.members {
		if m.proc != nil {
			continue
		}
		wg.Go(func() { errs[i] = c.startMember(ctx, m, readersOpen) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *procCluster) startMember(ctx context.Context, m *procMember, readersOpen bool) error {
	state := "new"
	if m.started > 0 {
		state = "existing"
	}
	conf := filepath.Join(m.dir, "member.yml")
	if err := os.WriteFile(conf, []byte(c.memberConfig(m, readersOpen, state)), 0o644); err != nil {
		return err
	}
	argv := []string{c.bin, "-config", conf}
	if c.cpu != "" {
		argv = append([]string{"taskset", "-c", c.cpu}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if c.cpu != "" {
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	proc, err := testkit.StartProcess(cmd)
	if err != nil {
		return fmt.Errorf("etcd member %s: %w", m.name, err)
	}
	m.proc = proc
	m.started++
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(proc.Out.String(), "ready\n") {
		switch {
		case proc.Exited():
			m.stopped()
			return fmt.Errorf("etcd member %s exited: %v: %s", m.name, proc.Err(), proc.Out.Tail(2000))
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("etcd member %s not ready after 2m: %s", m.name, proc.Out.Tail(2000))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// stopped books the CPU time of the member's process, which has exited.
func (m *procMember) stopped() {
	if st := m.proc.Cmd.ProcessState; st != nil {
		m.cpuOfStopped += st.UserTime() + st.SystemTime()
	}
	m.proc = nil
}

// Stop kills every member at once (SIGKILL, as a crash or a power cut
// would), keeping its data: etcd's graceful stop waits up to its request
// timeout (7 s) per client listener for open watch streams to end, which
// would make every outage that long and spread out when it starts.
func (c *procCluster) Stop() {
	var wg sync.WaitGroup
	for _, m := range c.members {
		if m.proc == nil {
			continue
		}
		wg.Go(func() {
			m.proc.Kill()
			m.stopped()
		})
	}
	wg.Wait()
}

// Restart stops the cluster, waits down, and starts it with the readers'
// ports open or not.
func (c *procCluster) Restart(ctx context.Context, down time.Duration, readersOpen bool) error {
	c.Stop()
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.Start(ctx, readersOpen)
}

// Close stops the members and removes their data.
func (c *procCluster) Close() {
	c.Stop()
	for _, m := range c.members {
		os.RemoveAll(m.dir)
	}
}

// ReaderEndpoints are the client URLs the simulated DNS readers use.
func (c *procCluster) ReaderEndpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.readerURL)
	}
	return eps
}

// AdminEndpoints are the client URLs the benchmark itself uses.
func (c *procCluster) AdminEndpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.adminURL)
	}
	return eps
}

// AdminClient is a client of the admin ports; the caller closes it.
func (c *procCluster) AdminClient() (*clientv3.Client, error) {
	return newBenchClient(c.AdminEndpoints())
}

// newBenchClient is a client configured as rollcall's own (etcdconn); the
// caller closes it.
func newBenchClient(endpoints []string) (*clientv3.Client, error) {
	cli, err := etcdconn.New(etcdconn.Config{Endpoints: endpoints})
	if err != nil {
		return nil, fmt.Errorf("etcd client of %v: %w", endpoints, err)
	}
	return cli, nil
}

// CPU is the CPU time every member process has used so far, stopped ones
// included.
func (c *procCluster) CPU() time.Duration {
	var total time.Duration
	for _, m := range c.members {
		total += m.cpuOfStopped
		if m.proc != nil {
			if d, err := procCPU(m.proc.Cmd.Process.Pid); err == nil {
				total += d
			}
		}
	}
	return total
}

// RSS is the members' resident memory, summed.
func (c *procCluster) RSS() int64 {
	var total int64
	for _, m := range c.members {
		if m.proc != nil {
			if n, err := procRSS(m.proc.Cmd.Process.Pid); err == nil {
				total += n
			}
		}
	}
	return total
}

// Metrics sums the counters of metricKeys over the members' /metrics.
func (c *procCluster) Metrics(ctx context.Context) (map[string]float64, error) {
	per, err := c.MemberMetrics(ctx)
	if err != nil {
		return nil, err
	}
	sum := map[string]float64{}
	for _, got := range per {
		for k, v := range got {
			sum[k] += v
		}
	}
	return sum, nil
}

// MemberMetrics reads the counters of metricKeys from each member's
// /metrics, in member order.
func (c *procCluster) MemberMetrics(ctx context.Context) ([]map[string]float64, error) {
	var per []map[string]float64
	for _, m := range c.members {
		got, err := etcdMetrics(ctx, m.adminURL)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", m.name, err)
		}
		per = append(per, got)
	}
	return per, nil
}
