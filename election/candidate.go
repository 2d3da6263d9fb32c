package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/rollcall/rollcall/registry"
)

// Errors, for errors.Is. A Leadership that ended by loss reports ErrLost
// wrapping one of ErrKeyDeleted, ErrLeaseGone or ErrUnconfirmed.
var (
	ErrBadOption   = errors.New("election: bad option")
	ErrNoLeader    = errors.New("election: no leader")
	ErrLost        = errors.New("election: leadership lost")
	ErrResigned    = errors.New("election: resigned")
	ErrKeyDeleted  = errors.New("election: leader key deleted")
	ErrLeaseGone   = errors.New("election: lease expired or revoked")
	ErrUnconfirmed = errors.New("election: lease not confirmed by etcd within the step-down bound")
)

// DefaultTTL is the TTL of a session the package makes itself (Campaign with
// clientv3.NoLease) when WithTTL is not given.
const DefaultTTL = 10 * time.Second

// Candidate campaigns for the master of one service on behalf of one host. It
// holds no resources: each Campaign makes its own, and a Leadership releases
// them on Resign. One Candidate (or several used one after the other) per
// service and lease: two concurrent candidacies of the same service on the
// same lease would share one key.
type Candidate struct {
	cli     *clientv3.Client
	keys    registry.Keys
	service string
	host    string
	ttl     time.Duration
	margin  time.Duration // 0: DefaultMargin of the lease's TTL
	log     *slog.Logger
	onError func(error) // Run's campaign failures, nil: only logged
}

// Option configures a Candidate.
type Option func(*Candidate) error

// WithTTL sets the TTL of the lease a Campaign grants itself when it is given
// no lease (whole seconds, at least 1s; default DefaultTTL). A Campaign on the
// caller's lease uses that lease's TTL.
func WithTTL(ttl time.Duration) Option {
	return func(c *Candidate) error {
		if ttl < time.Second || ttl%time.Second != 0 {
			return fmt.Errorf("%w: TTL %v must be whole seconds, at least 1s", ErrBadOption, ttl)
		}
		c.ttl = ttl
		return nil
	}
}

// WithCampaignErrors has Run call f with every failed campaign attempt
// before it retries (Run logs only the first of a kind), so that a caller
// can count and explain them: a permission denied on the election key is a
// configuration mistake that retrying will not heal.
func WithCampaignErrors(f func(error)) Option {
	return func(c *Candidate) error {
		c.onError = f
		return nil
	}
}

// WithMargin sets how long before the earliest possible expiry of the lease
// the holder steps down (default DefaultMargin(TTL)). It must cover the clock
// rate difference between this host and etcd over one TTL plus the time the
// master's work needs to stop once its context is cancelled.
func WithMargin(margin time.Duration) Option {
	return func(c *Candidate) error {
		if margin <= 0 {
			return fmt.Errorf("%w: step-down margin %v must be positive", ErrBadOption, margin)
		}
		c.margin = margin
		return nil
	}
}

// WithLogger sets the logger for state changes (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *Candidate) error {
		c.log = l
		return nil
	}
}

// NewCandidate returns a candidate for the master of service, campaigning
// with host as its value. Both must be valid names (registry.CheckName).
func NewCandidate(cli *clientv3.Client, keys registry.Keys, service, host string, opts ...Option) (*Candidate, error) {
	if err := registry.CheckName("service", service); err != nil {
		return nil, fmt.Errorf("election candidate: %w", err)
	}
	if err := registry.CheckName("host", host); err != nil {
		return nil, fmt.Errorf("election candidate: %w", err)
	}
	c := &Candidate{cli: cli, keys: keys, service: service, host: host, ttl: DefaultTTL, log: slog.Default()}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.margin != 0 && c.margin >= c.ttl {
		return nil, fmt.Errorf("%w: step-down margin %v must be less than the TTL %v", ErrBadOption, c.margin, c.ttl)
	}
	c.log = c.log.With("service", service, "host", host)
	return c, nil
}

// Service returns the service the candidate campaigns for.
func (c *Candidate) Service() string { return c.service }

// Host returns the host name the candidate campaigns with.
func (c *Candidate) Host() string { return c.host }

// Campaign blocks until the candidate is master of its service, ctx ends, or
// etcd fails, and returns the Leadership. ctx bounds only the campaign: the
// Leadership lasts until it is lost or resigned, whatever becomes of ctx.
//
// lease is the lease the candidacy key lives on: the caller's (kept alive and
// eventually revoked by the caller; Campaign never revokes it), or
// clientv3.NoLease for a lease of the candidate's own with the TTL of
// WithTTL, revoked on Resign.
//
// Every Campaign writes a new key, deleting a key this candidate left on the
// same lease, so a new Leadership always has a larger term than any earlier
// one. A lost Leadership on a lease of its own keeps its key (and so holds
// up the election) until its Resign: resign it before campaigning again, as
// Run does. On error nothing is left behind: the key is removed (best
// effort) and an own lease revoked.
func (c *Candidate) Campaign(ctx context.Context, lease clientv3.LeaseID) (*Leadership, error) {
	l, err := c.campaign(ctx, lease)
	if err != nil {
		return nil, fmt.Errorf("campaign for master of %s as %s: %w", c.service, c.host, err)
	}
	return l, nil
}

func (c *Candidate) campaign(ctx context.Context, lease clientv3.LeaseID) (*Leadership, error) {
	own := lease == clientv3.NoLease
	lease, ttl, err := c.leaseFor(ctx, lease)
	if err != nil {
		return nil, err
	}
	margin := c.margin
	if margin == 0 {
		margin = DefaultMargin(ttl)
	}
	if err := checkMargin(ttl, margin); err != nil {
		c.revokeOwn(own, lease)
		return nil, err
	}
	// NewSession with a lease makes no request: it only joins the client's
	// keepalive of that lease, which clientv3 shares between all its users.
	sess, err := concurrency.NewSession(c.cli, concurrency.WithLease(lease))
	if err != nil {
		c.revokeOwn(own, lease)
		return nil, fmt.Errorf("session on lease %x: %w", int64(lease), err)
	}
	l := &Leadership{
		c:      c,
		cli:    c.cli,
		sess:   sess,
		own:    own,
		lease:  lease,
		key:    fmt.Sprintf("%s/%x", c.keys.Election(c.service), int64(lease)),
		margin: margin,
	}
	if err := l.stand(ctx, ttl); err != nil {
		l.abandon()
		return nil, err
	}
	c.log.Info("elected master", "term", l.term, "key", l.key)
	return l, nil
}

// leaseFor returns the lease to campaign on and its TTL: a new one of the
// candidate's TTL when lease is NoLease, else lease itself if it lives.
func (c *Candidate) leaseFor(ctx context.Context, lease clientv3.LeaseID) (clientv3.LeaseID, time.Duration, error) {
	if lease == clientv3.NoLease {
		g, err := c.cli.Grant(ctx, int64(c.ttl/time.Second))
		if err != nil {
			return 0, 0, fmt.Errorf("grant lease: %w", err)
		}
		return g.ID, time.Duration(g.TTL) * time.Second, nil
	}
	r, err := c.cli.TimeToLive(ctx, lease)
	if err != nil {
		return 0, 0, fmt.Errorf("read lease %x: %w", int64(lease), err)
	}
	if r.TTL <= 0 {
		return 0, 0, fmt.Errorf("lease %x: %w", int64(lease), ErrLeaseGone)
	}
	return lease, time.Duration(r.GrantedTTL) * time.Second, nil
}

// stand puts the candidacy key, waits for its turn and confirms the lease,
// then starts the leadership's clock. The caller abandons l on an error.
func (l *Leadership) stand(ctx context.Context, ttl time.Duration) error {
	// A key of ours that is still there is a candidacy from an earlier term
	// (lost, or abandoned by a failed Resign). concurrency.Election would
	// resume it with its old term; delete it so this campaign gets a new one.
	// (put says why we do not call concurrency.Election.Campaign.)
	// A lease of our own is new, so it has no earlier key.
	if !l.own {
		if _, err := l.cli.Delete(ctx, l.key); err != nil {
			return fmt.Errorf("clear earlier candidacy %s: %w", l.key, err)
		}
	}
	term, err := l.put(ctx)
	if err != nil {
		return err
	}
	l.term = term
	l.c.log.Info("campaigning", "key", l.key, "term", term)
	if err := l.waitTurnOnLease(ctx, term); err != nil {
		return err
	}
	// Confirm before claiming: the lease was renewed by a request sent at
	// sent, and after that our key was still the first of the election. (The
	// lease may have expired while we waited, leaving waitDeletes none the
	// wiser.) From here the step-down clock runs from sent.
	sent := time.Now()
	cctx, cancel := context.WithDeadline(ctx, masterUntil(sent, ttl, l.margin))
	ttl, err = l.confirm(cctx)
	cancel()
	if err != nil {
		return err
	}
	l.start(sent, ttl)
	return nil
}

// revokeOwn revokes a lease granted by Campaign that will not be used.
func (c *Candidate) revokeOwn(own bool, lease clientv3.LeaseID) {
	if !own {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.ttl)
	defer cancel()
	c.cli.Revoke(ctx, lease) // if this fails the lease expires by itself
}
