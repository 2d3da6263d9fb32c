package servicereg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
)

// Refusals: etcd that answers but will not let this agent write (RBAC,
// docs/DESIGN.md, "Keys": a host's user writes only its own subtree),
// or that this agent cannot talk to at all because of its TLS settings. Both
// are configuration mistakes that retrying will not heal, and clientv3
// reports the second only as "context deadline exceeded". So the main loop
// passes each failure through explain, which says what to fix: a refused
// write is logged once per refused key at error level with the fix, counted
// (rollcall_servicereg_write_denied, _permission_denied_total), and stays in
// /healthz until a write succeeds, even while keepalives go through; a
// connection failure is probed once per outage (etcdconn.Diagnose) and the
// finding is added to the log line and /healthz. The agent keeps retrying
// with backoff: fixing the RBAC grant heals it without a restart.

// keyError is a failed etcd operation on one key, so that a refusal can say
// which key. Its text is "OP KEY: ERR".
type keyError struct {
	op, key string
	err     error
}

func (e *keyError) Error() string { return fmt.Sprintf("%s %s: %v", e.op, e.key, e.err) }
func (e *keyError) Unwrap() error { return e.err }

// onKey wraps err (nil stays nil) with the operation and key it failed on.
func onKey(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return &keyError{op: op, key: key, err: err}
}

// isDenied is etcdconn.IsDenied: a refusal for lack of rights.
var isDenied = etcdconn.IsDenied

// refusals is the main loop's record of the current refusal. Only the main
// loop touches it.
type refusals struct {
	denied      prometheus.Gauge
	deniedTotal *prometheus.CounterVec
	key         string // the key last refused; "" when writes go through
	deniedNow   bool
	diag        error // what Diagnose found for the current failure
}

func newRefusals(reg *prometheus.Registry) *refusals {
	const ns, sub = "rollcall", "servicereg"
	r := &refusals{
		denied: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "write_denied",
			Help: "1 while etcd refuses this agent's writes (permission denied: RBAC or the certificate's user), else 0."}),
		deniedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "permission_denied_total",
			Help: "etcd operations refused with permission denied, by operation."}, []string{"op"}),
	}
	reg.MustRegister(r.denied, r.deniedTotal)
	return r
}

// explain returns err with what to fix added, logging and counting a
// refusal; first says this failure starts an outage (the loop was fine
// before), the one moment a connection failure is probed.
func (a *Agent) explain(ctx context.Context, op string, err error, first bool) error {
	r := a.refused
	cfg := a.Config()
	if isDenied(err) {
		var ke *keyError
		key := ""
		if errors.As(err, &ke) {
			key = ke.key
		}
		r.deniedTotal.WithLabelValues(op).Inc()
		r.denied.Set(1)
		fix := deniedFix(cfg.Keys(), cfg.Host, key, cfg.Etcd.Cert)
		if !r.deniedNow || key != r.key {
			a.log.Error("etcd refused a write: permission denied; this host is not (fully) registered until that is fixed, retrying with backoff",
				"op", op, "key", key, "host", cfg.Host, "fix", fix, "err", err)
		}
		r.deniedNow, r.key, r.diag = true, key, nil
		return &deniedError{err: err, fix: fix}
	}
	if first {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r.diag = etcdconn.Diagnose(dctx, cfg.Etcdconn())
		cancel()
	}
	if r.diag != nil {
		return fmt.Errorf("%w (%v)", err, r.diag)
	}
	return err
}

// cleared notes a successful reconcile: the refusal, if any, is over.
func (a *Agent) cleared() {
	r := a.refused
	if r.deniedNow {
		a.log.Info("etcd accepts this agent's writes again", "key", r.key)
	}
	r.deniedNow, r.key = false, ""
	r.denied.Set(0)
}

// deniedError is a refused write with what to fix; /healthz shows it.
type deniedError struct {
	err error
	fix string
}

func (e *deniedError) Error() string { return e.err.Error() + ": " + e.fix }
func (e *deniedError) Unwrap() error { return e.err }

// deniedFix says what to fix when etcd refused key to this agent (key may
// be ""). host is the config's host; cert the client certificate file, ""
// when none is configured.
func deniedFix(keys registry.Keys, host, key, cert string) string {
	user := "this agent's etcd user"
	if cert != "" {
		user = "this agent's etcd user (the CN of " + cert + ")"
	}
	switch {
	case strings.HasPrefix(key, keys.HostDir(host)):
		return fmt.Sprintf("%s may not write host %s's keys: set host: in the config to the host that user belongs to, or give it a certificate with CN=%s, or grant it with deploy/rbac.sh %s", user, host, host, host)
	case strings.HasPrefix(key, keys.Elections()):
		svc, _, _ := strings.Cut(strings.TrimPrefix(key, keys.Elections()), "/")
		return fmt.Sprintf("%s may not campaign for %s: add it to this host's deploy/rbac.sh argument (%s:%s,...)", user, svc, host, svc)
	case key != "":
		return fmt.Sprintf("%s may not write %s: this host's role must grant readwrite on %s (deploy/rbac.sh %s)", user, key, keys.HostDir(host), host)
	}
	return fmt.Sprintf("%s lacks a permission (or etcd has no such user): grant it with deploy/rbac.sh %s", user, host)
}

// alive notes a keepalive answer: etcd is reachable. It clears a failed
// write's error, except a refusal: that one holds until a write succeeds,
// because keepalives go through while every write is refused.
func (h *health) alive(now time.Time) {
	h.mu.Lock()
	h.lastOK = now
	if !isDenied(h.lastErr) {
		h.lastErr = nil
	}
	h.mu.Unlock()
}
