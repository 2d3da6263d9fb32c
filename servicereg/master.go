package servicereg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/internal/backoff"
)

// Master elections (docs/DESIGN.md, "Elections and terms"; keys
// P/elections/<service>/<lease-hex>):
// a service with master_election campaigns for its master while it is in
// service (registered, passing or warning, not in maintenance: see
// presenceHook) and the agent holds a lease, on that lease, so that a host
// that dies or loses etcd drops out of the election with its names. The
// campaign itself is election.Candidate.Run; this file only starts and
// stops it from the main loop's decisions and runs the on_master/on_standby
// hooks.
//
// In service is judged by the state the instance record carries, which
// the state-write rate limit paces (healthstate.go), not by the checks'
// latest word: a flapping check then cannot make the host campaign and
// resign, each an etcd write, faster than it may write its state, and the
// host campaigns exactly while DNS would serve its instance.

func init() {
	hookFactories = append(hookFactories, newMasterHook)
}

// hookTimeout bounds one on_master/on_standby run: a hung hook must not hold
// up the next transition of its service for ever.
const hookTimeout = 60 * time.Second

// hookOutputMax bounds the hook output quoted in a log line.
const hookOutputMax = 4096

// masterHook follows the main loop (hooks.go). Its maps are touched only from
// the main loop's calls, which never run concurrently; candidacies run in
// goroutines of their own, counted in wg so that the agent's last call (lease
// 0 with its context done) can wait for all of them.
type masterHook struct {
	a      *Agent
	master *prometheus.GaugeVec

	lease   clientv3.LeaseID
	present map[string]Service    // services in service with master_election
	runs    map[string]*candidacy // the latest candidacy of each service
	wg      sync.WaitGroup
}

// candidacy is one service's campaign on one lease.
type candidacy struct {
	cancel context.CancelCauseFunc // its cause says why it ended, for the log
	done   chan struct{}           // closed once the campaign and its hooks are over
}

func newMasterHook(a *Agent) (presenceHook, error) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "rollcall", Subsystem: "servicereg", Name: "master",
		Help: "1 while this host is master of the service (master_election), else 0."}, []string{"service"})
	if err := a.m.reg.Register(g); err != nil {
		return nil, fmt.Errorf("register master metric: %w", err)
	}
	return &masterHook{a: a, master: g, present: map[string]Service{}, runs: map[string]*candidacy{}}, nil
}

func (h *masterHook) leaseChanged(ctx context.Context, id clientv3.LeaseID) {
	h.lease = id
	for name := range h.runs {
		h.stop(name, errLeaseChanged)
	}
	if ctx.Err() != nil {
		// The agent stops: its Run must not return before our goroutines.
		h.wg.Wait()
		return
	}
	if id == 0 {
		return
	}
	for _, svc := range h.present {
		h.start(ctx, svc)
	}
}

// errLeaseChanged ends the candidacies of a lease that was lost or replaced.
var errLeaseChanged = errors.New("lease changed")

func (h *masterHook) inServiceChanged(ctx context.Context, svc Service, in bool, why string) {
	if !in || !svc.MasterElection {
		delete(h.present, svc.Name)
		if why == "" {
			why = "master_election turned off"
		}
		h.stop(svc.Name, errors.New("out of service: "+why))
		return
	}
	h.present[svc.Name] = svc
	if h.lease != 0 && ctx.Err() == nil {
		h.stop(svc.Name, errors.New("campaigning again"))
		h.start(ctx, svc)
	}
}

// stop cancels the service's candidacy, if any, with why as its cause; it
// winds down (resigning at once) in its own goroutine.
func (h *masterHook) stop(name string, why error) {
	if c := h.runs[name]; c != nil {
		c.cancel(why)
	}
}

// start campaigns for svc on the current lease. The new candidacy waits for
// the service's previous one to finish, hooks included, so that the hooks of
// one service run in order and two candidacies never share a key.
func (h *masterHook) start(ctx context.Context, svc Service) {
	var prev <-chan struct{}
	if old := h.runs[svc.Name]; old != nil {
		prev = old.done
	}
	cctx, cancel := context.WithCancelCause(ctx)
	c := &candidacy{cancel: cancel, done: make(chan struct{})}
	h.runs[svc.Name] = c
	cfg := h.a.Config()
	lease := h.lease
	h.wg.Go(func() {
		defer close(c.done)
		defer cancel(nil)
		if prev != nil {
			<-prev
		}
		h.campaign(ctx, cctx, svc, cfg, lease)
	})
}

// campaign runs the candidacy until cctx ends or the lease is gone. Hooks run
// under the agent's context (ctx), not the candidacy's, so that on_standby
// still runs after the unit stopped; they stop when the agent stops.
func (h *masterHook) campaign(ctx, cctx context.Context, svc Service, cfg *Config, lease clientv3.LeaseID) {
	log := h.a.log.With("service", svc.Name, "host", cfg.Host)
	h.master.WithLabelValues(svc.Name).Set(0)
	if cctx.Err() != nil {
		return
	}
	denied := &campaignDenied{h: h, cfg: cfg, svc: svc.Name, log: log}
	cand, err := election.NewCandidate(h.a.cli, cfg.Keys(), svc.Name, cfg.Host, election.WithLogger(h.a.log), election.WithCampaignErrors(denied.report))
	if err != nil {
		log.Error("cannot campaign for master", "err", err)
		return
	}
	q := newHookQueue()
	var hooks sync.WaitGroup
	hooks.Go(func() { q.run(ctx, h.a, svc, cfg.Host) })
	defer func() {
		q.close()
		hooks.Wait()
	}()
	err = h.stand(cctx, cand, lease, func(l *election.Leadership) { h.lead(cctx, svc.Name, l, q, log) }, log)
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Info("master campaign ended", "err", err)
	}
	h.withdraw(ctx, cfg.Keys().Election(svc.Name), lease, log)
}

// campaignDenied reports a campaign write that etcd refused (RBAC): counted
// every time, logged with the fix once per candidacy, since the election
// retries it again and again.
type campaignDenied struct {
	h      *masterHook
	cfg    *Config
	svc    string
	log    *slog.Logger
	logged bool
}

func (d *campaignDenied) report(err error) {
	if !isDenied(err) {
		return
	}
	d.h.a.refused.deniedTotal.WithLabelValues("campaign").Inc()
	if d.logged {
		return
	}
	d.logged = true
	key := d.cfg.Keys().Election(d.svc) + "/"
	d.log.Error("etcd refused the master campaign: permission denied; this host cannot become master until that is fixed, retrying",
		"key", key, "fix", deniedFix(d.cfg.Keys(), d.cfg.Host, key, d.cfg.Etcd.Cert), "err", err)
}

// lead is one term as master: the gauge and the on_master hook, then, when
// the leadership ends or the candidacy does (cctx: resign at once, so that
// another host takes over without waiting for a TTL), the on_standby hook.
func (h *masterHook) lead(cctx context.Context, svc string, l *election.Leadership, q *hookQueue, log *slog.Logger) {
	h.master.WithLabelValues(svc).Set(1)
	log.Info("master: this host is master", "term", l.Term())
	q.push(hookRun{master: true, term: l.Term()})
	reason := "leadership lost"
	select {
	case <-l.Done():
		if err := l.Err(); err != nil {
			reason = err.Error()
		}
	case <-cctx.Done():
		reason = "agent stopping"
		if cause := context.Cause(cctx); !errors.Is(cause, context.Canceled) {
			reason = cause.Error()
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(cctx), etcdOpTimeout)
		if err := l.Resign(rctx); err != nil {
			log.Warn("resign failed; the key goes with the lease or the next campaign", "err", err)
		}
		cancel()
	}
	h.master.WithLabelValues(svc).Set(0)
	log.Info("master: this host is standby", "term", l.Term(), "reason", reason)
	q.push(hookRun{master: false, term: l.Term()})
}

// stand runs the candidacy until cctx ends or it fails for good, and
// returns why it ended.
func (h *masterHook) stand(cctx context.Context, cand *election.Candidate, lease clientv3.LeaseID, lead func(*election.Leadership), log *slog.Logger) error {
	retry := backoff.New(recampaignRetry)
	for again := false; ; again = true {
		started := time.Now()
		err := cand.Run(cctx, lease, lead)
		if !errors.Is(err, election.ErrLeaseGone) || cctx.Err() != nil {
			return err
		}
		// The election found the lease gone. When it is, the main loop
		// finds out too and ends this candidacy; until then it may be a
		// false alarm (a member that hung answers for leases it no longer
		// keeps), and a candidacy given up on it would not come back while
		// the lease and the service live on. So campaign again.
		if !again {
			log.Info("master campaign: the election saw the lease gone; campaigning again until the agent confirms", "err", err)
		}
		if time.Since(started) > recampaignRetry.Max {
			// That campaign stood a while, so the lease lived: this is a
			// new false alarm, not the next of a run of them.
			retry.Reset()
		}
		if werr := retry.Wait(cctx); werr != nil {
			return werr // the candidacy was ended meanwhile: nothing to report
		}
	}
}

// withdraw makes sure the candidacy key of a campaign that ended is gone.
// Run resigns (or abandons a campaign not won yet) with one try each; when
// those fail (etcd unreachable, a member hung with its connection open) the
// key stays on the lease, which lives on with the host record: this host
// stays master in etcd, or in line, with its service absent, and no other
// host takes over. So the key is deleted here until that works. Nothing else
// writes it meanwhile: the service's next candidacy waits for this one. When
// the agent stops, revoking the lease deletes it instead.
func (h *masterHook) withdraw(ctx context.Context, election string, lease clientv3.LeaseID, log *slog.Logger) {
	key := fmt.Sprintf("%s/%x", election, int64(lease))
	retry := backoff.New(withdrawRetry)
	for i := 0; ctx.Err() == nil; i++ {
		dctx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
		_, err := h.a.cli.Delete(dctx, key)
		cancel()
		if err == nil {
			if i > 0 {
				log.Info("candidacy withdrawn", "key", key)
			}
			return
		}
		if isDenied(err) {
			return // then the campaign could not write the key either
		}
		if i == 0 {
			log.Warn("candidacy key left behind; deleting it until that works", "key", key, "err", err)
		}
		if retry.Wait(ctx) != nil {
			return
		}
	}
}

// recampaignRetry paces the campaigns a candidacy makes again after the
// election saw its lease gone (campaign): as election.Candidate.Run paces
// its own retries of a failed campaign, so that a candidacy is in the
// running again at the same pace whatever stopped it. A false alarm comes
// from etcd trouble that every agent on the cluster sees at once: jitter
// keeps their candidacies from campaigning again in step. The window starts
// at [250ms, 500ms] and doubles to [250ms, 2s]: a retry then comes 1.1s
// after the last on average, as the fixed second it replaces did, and a host
// is out of line for at most 2s per false alarm.
var recampaignRetry = backoff.Policy{Min: 250 * time.Millisecond, Base: 500 * time.Millisecond, Max: 2 * time.Second}

// withdrawRetry paces withdraw's tries. The key left behind keeps this host
// master, or in line, for a service it no longer runs, and holds up the
// service's next candidacy: the tries stay frequent, the window going from
// [250ms, 500ms] to [250ms, 1s] (625ms on average, near the fixed 500ms it
// replaces). Jitter spreads the agents whose resignations failed together in
// one etcd outage.
var withdrawRetry = backoff.Policy{Min: 250 * time.Millisecond, Base: 500 * time.Millisecond, Max: time.Second}

// hookRun is one on_master (master) or on_standby run for a term.
type hookRun struct {
	master bool
	term   int64
}

// hookQueue hands hook runs from the campaign to the goroutine that runs them
// in order, so that a slow hook never delays noticing a lost leadership.
type hookQueue struct {
	mu     sync.Mutex
	items  []hookRun
	closed bool
	wake   chan struct{} // cap 1
}

func newHookQueue() *hookQueue { return &hookQueue{wake: make(chan struct{}, 1)} }

func (q *hookQueue) push(r hookRun) {
	q.mu.Lock()
	q.items = append(q.items, r)
	q.mu.Unlock()
	q.signal()
}

// close lets run return once the queue is drained.
func (q *hookQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *hookQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run runs queued hooks in order until the queue is closed and empty. Once
// ctx (the agent's) ends, what is left is skipped.
func (q *hookQueue) run(ctx context.Context, a *Agent, svc Service, host string) {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, r := range items {
			argv, name := svc.OnStandby, "on_standby"
			if r.master {
				argv, name = svc.OnMaster, "on_master"
			}
			if len(argv) == 0 {
				continue
			}
			if ctx.Err() != nil {
				a.log.Info("agent stopping: hook not run", "hook", name, "service", svc.Name, "term", r.term)
				continue
			}
			if out, err := runMasterHook(ctx, argv, svc.Name, host, r.term); err != nil {
				a.log.Warn("hook failed", "hook", name, "service", svc.Name, "term", r.term, "argv", argv, "err", err, "output", out)
			} else {
				a.log.Debug("hook ran", "hook", name, "service", svc.Name, "term", r.term)
			}
		}
		if closed && len(items) == 0 {
			return
		}
		if len(items) == 0 {
			<-q.wake
		}
	}
}

// runMasterHook runs argv (no shell) with the election's facts in its
// environment, bounded by hookTimeout and ctx, and returns its combined
// output (truncated) for the log.
func runMasterHook(ctx context.Context, argv []string, service, host string, term int64) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		"ROLLCALL_SERVICE="+service,
		"ROLLCALL_HOST="+host,
		"ROLLCALL_TERM="+strconv.FormatInt(term, 10))
	// A child that keeps the output pipe open must not hold us past the kill.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if len(out) > hookOutputMax {
		out = append(out[:hookOutputMax], "..."...)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		return string(out), fmt.Errorf("run %s: %w", argv[0], err)
	}
	return string(out), nil
}
