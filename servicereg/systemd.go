package servicereg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/rollcall/rollcall/internal/backoff"
)

// unitWatcher follows the configured units through systemd's D-Bus API. Signals
// (PropertiesChanged) are hints: on each one for a watched unit it asks systemd
// for the unit's current state, so signals that arrive late or out of order
// cannot leave a stale state behind. A full read of every watched unit runs at
// connect, every resync interval, when the signal stream overflows and when the
// set of units changes: nothing is lost silently.
type unitWatcher struct {
	mode     string // SystemdSystem or SystemdUser
	log      *slog.Logger
	m        *metrics
	resync   time.Duration
	report   func(states map[string]UnitState, full bool)
	resyncCh chan struct{} // cap 1: read every unit again soon
	bufSize  int           // signal buffer; tests shrink it to force overflows

	mu    sync.Mutex
	units []string
}

func newUnitWatcher(mode string, log *slog.Logger, m *metrics, resync time.Duration, report func(map[string]UnitState, bool)) *unitWatcher {
	return &unitWatcher{mode: mode, log: log, m: m, resync: resync, report: report, resyncCh: make(chan struct{}, 1), bufSize: 1024}
}

// setUnits replaces the watched units and asks for a full read.
func (w *unitWatcher) setUnits(units []string) {
	w.mu.Lock()
	w.units = append([]string(nil), units...)
	w.mu.Unlock()
	select {
	case w.resyncCh <- struct{}{}:
	default:
	}
}

func (w *unitWatcher) watched() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.units...)
}

// run keeps a connection to systemd until ctx ends, reconnecting with backoff
// when systemd restarts or the connection breaks.
func (w *unitWatcher) run(ctx context.Context) {
	retry := backoff.New(systemdRetry)
	var lastErr string
	for ctx.Err() == nil {
		err := w.session(ctx)
		w.m.systemdConnected.Set(0)
		if ctx.Err() != nil {
			return
		}
		if err == errSessionWasUp {
			retry.Reset()
			lastErr = ""
		} else if msg := err.Error(); msg != lastErr {
			w.log.Warn("systemd unreachable; retrying with backoff", "systemd", w.mode, "err", err)
			lastErr = msg
		}
		if retry.Wait(ctx) != nil {
			return
		}
	}
}

// systemdRetry paces the reconnections to systemd. The manager is back
// within a moment of a daemon-reexec or restart, so the first try comes
// within 200ms (at least 100ms); a manager that stays away (the user
// manager of a user logged out) is asked less and less often, the window
// doubling to [100ms, 10s]. Jitter is for the fleet: one systemd upgrade
// re-executes every host's manager at about the same moment, and their
// agents need not all reconnect, and then write to etcd, at the same one.
var systemdRetry = backoff.Policy{Min: 100 * time.Millisecond, Base: 200 * time.Millisecond, Max: 10 * time.Second}

// errSessionWasUp marks the end of a session that had connected, so the next
// connection is tried soon, at the first step of the back-off.
var errSessionWasUp = errors.New("systemd connection lost")

// connectTimeout bounds connecting, subscribing and the first read: D-Bus
// authentication and Subscribe take no deadline of their own, and a manager
// that accepts but never answers must not stall the watcher for good.
const connectTimeout = 15 * time.Second

func (w *unitWatcher) session(ctx context.Context) error {
	// The connection lives as long as sctx (godbus closes it when sctx
	// ends); the timer ends sctx when the start-up takes too long.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(connectTimeout, cancel)
	conn, updates, errs, err := w.start(sctx)
	if !timer.Stop() && err == nil {
		err = fmt.Errorf("no answer from the %s manager within %v", w.mode, connectTimeout)
	}
	if conn != nil {
		defer conn.Close()
	}
	if err != nil {
		return err
	}
	w.m.systemdConnected.Set(1)
	w.log.Info("watching units through systemd", "systemd", w.mode, "units", w.watched())

	tick := time.NewTicker(w.resync)
	defer tick.Stop()
	// Connected() is a local check; it notices a manager that went away
	// (daemon-reexec, restart) even when no unit changes.
	alive := time.NewTicker(time.Second)
	defer alive.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case u := <-updates:
			err = w.readOne(ctx, conn, u.UnitName)
		case e := <-errs:
			drain(errs)
			w.m.resyncs.WithLabelValues("signal-error").Inc()
			w.log.Debug("systemd signal stream reported a problem; reading all units", "err", e)
			err = w.readAll(ctx, conn)
		case <-w.resyncCh:
			w.m.resyncs.WithLabelValues("units-changed").Inc()
			err = w.readAll(ctx, conn)
		case <-tick.C:
			w.m.resyncs.WithLabelValues("periodic").Inc()
			err = w.readAll(ctx, conn)
		case <-alive.C:
			if !conn.Connected() {
				err = errors.New("connection closed")
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.Warn("lost the systemd connection; reconnecting", "systemd", w.mode, "err", err)
			return errSessionWasUp
		}
	}
}

// start connects, subscribes to signals and reads every unit once.
func (w *unitWatcher) start(ctx context.Context) (*sddbus.Conn, <-chan *sddbus.PropertiesUpdate, <-chan error, error) {
	conn, err := connectSystemd(ctx, w.mode)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to the %s manager: %w", w.mode, err)
	}
	// The channel is large, but a burst can still fill it: go-systemd then
	// drops the update and reports on errs, and a full read follows.
	updates := make(chan *sddbus.PropertiesUpdate, w.bufSize)
	// go-systemd logs through the standard logger each error it cannot put
	// here; room for a burst keeps that quiet, and one full read answers
	// them all (see the drain below).
	errs := make(chan error, 64)
	conn.SetPropertiesSubscriber(updates, errs)
	if err := conn.Subscribe(); err != nil {
		return conn, nil, nil, fmt.Errorf("subscribe to %s manager signals: %w", w.mode, err)
	}
	if err := w.readAll(ctx, conn); err != nil {
		return conn, nil, nil, err
	}
	return conn, updates, errs, nil
}

// drain empties errs: the full read that follows covers every error in it.
func drain(errs <-chan error) {
	for {
		select {
		case <-errs:
		default:
			return
		}
	}
}

// readOne refreshes one unit after a signal; signals for units not watched
// are ignored.
func (w *unitWatcher) readOne(ctx context.Context, conn *sddbus.Conn, unit string) error {
	found := false
	for _, u := range w.watched() {
		if u == unit {
			found = true
			break
		}
	}
	if !found {
		return nil
	}
	return w.read(ctx, conn, []string{unit}, false)
}

func (w *unitWatcher) readAll(ctx context.Context, conn *sddbus.Conn) error {
	return w.read(ctx, conn, w.watched(), true)
}

func (w *unitWatcher) read(ctx context.Context, conn *sddbus.Conn, units []string, full bool) error {
	states := make(map[string]UnitState, len(units))
	if len(units) > 0 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		// ListUnitsByNames answers for units that are not loaded too
		// (LoadState not-found), in one call.
		list, err := conn.ListUnitsByNamesContext(cctx, units)
		if err != nil {
			return fmt.Errorf("read unit states: %w", err)
		}
		for _, u := range list {
			states[u.Name] = UnitState{LoadState: u.LoadState, ActiveState: u.ActiveState, SubState: u.SubState}
		}
	}
	w.report(states, full)
	return nil
}

// connectSystemd opens a D-Bus connection to the configured manager.
//
//   - user: the manager's private socket $XDG_RUNTIME_DIR/systemd/private. It
//     needs no session bus daemon (headless hosts, containers and tests rarely
//     run one) and is what systemctl --user itself falls back to.
//   - system: as root the manager's private socket /run/systemd/private (again
//     no bus daemon needed), else the system bus.
func connectSystemd(ctx context.Context, mode string) (*sddbus.Conn, error) {
	if mode == SystemdUser {
		rt := os.Getenv("XDG_RUNTIME_DIR")
		if rt == "" {
			return nil, errors.New("systemd: user needs XDG_RUNTIME_DIR (the user manager's runtime folder) to be set")
		}
		sock := filepath.Join(rt, "systemd", "private")
		return sddbus.NewConnection(func() (*dbus.Conn, error) { return dialPrivate(ctx, sock) })
	}
	if os.Geteuid() == 0 {
		if c, err := sddbus.NewSystemdConnectionContext(ctx); err == nil {
			return c, nil
		}
	}
	return sddbus.NewSystemConnectionContext(ctx)
}

// dialPrivate connects to a systemd manager's private socket. There is no bus
// daemon behind it, so no Hello call, and EXTERNAL auth with our uid.
func dialPrivate(ctx context.Context, sock string) (*dbus.Conn, error) {
	conn, err := dbus.Dial("unix:path="+sock, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", sock, err)
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate to %s: %w", sock, err)
	}
	return conn, nil
}
