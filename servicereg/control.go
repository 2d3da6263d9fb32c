package servicereg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rollcall/rollcall/internal/backoff"
)

// The control socket: `servicereg drain`, `undrain` and `status` talk to the
// running agent over a unix socket at the config's control: path. One JSON
// ControlRequest per connection, one JSON ControlResponse back.
//
// Access control is the socket file's mode: 0600, owned by the agent's user
// (root in production), so only root can drain a host's services. The
// folder is created 0755 when missing: the mode of the socket, not of the
// folder, is what keeps others out.
//
// The socket is not the agent's job, registration is: a socket that
// cannot be opened (the folder not writable, another agent answering on
// it) is logged at error level and tried again every little while, and the
// agent registers meanwhile. Two agents on one control path are a mistake
// the log names; the second gets the socket when the first goes.

// ControlRequest is one request on the control socket.
type ControlRequest struct {
	Op      string `json:"op"`                // "drain", "undrain" or "status"
	Service string `json:"service,omitempty"` // drain, undrain
	// TimeoutMS bounds how long the agent works on the request (waiting
	// for etcd to take a drain), in milliseconds; 0: controlMaxWait.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// ControlResponse is the answer: Error, or the op's result.
type ControlResponse struct {
	Error  string       `json:"error,omitempty"`
	Drain  *DrainResult `json:"drain,omitempty"`
	Status *Status      `json:"status,omitempty"`
}

// The control ops.
const (
	OpDrain   = "drain"
	OpUndrain = "undrain"
	OpStatus  = "status"
)

const (
	// controlMaxWait bounds one request, whatever it asks: a drain waits
	// for etcd at most this long.
	controlMaxWait = 5 * time.Minute
	// controlReadTimeout bounds reading a request: a client that connects
	// and says nothing must not hold a goroutine.
	controlReadTimeout = 5 * time.Second
	// controlMaxRequest bounds a request's size.
	controlMaxRequest = 64 << 10
)

// controlTries numbers the temporary names openControl binds.
var controlTries atomic.Int64

// controlRetry paces new tries to open a socket that could not be opened.
var controlRetry = backoff.Policy{Min: time.Second, Base: 2 * time.Second, Max: 30 * time.Second}

// CallControl sends req to the agent listening at path and returns its
// answer; an answer carrying Error is returned as an error. ctx bounds the
// whole exchange, and its deadline tells the agent how long to work.
func CallControl(ctx context.Context, path string, req ControlRequest) (*ControlResponse, error) {
	if dl, ok := ctx.Deadline(); ok && req.TimeoutMS == 0 {
		req.TimeoutMS = max(time.Until(dl).Milliseconds(), 1)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the agent at %s: %w (is servicereg running, and are you root? -socket or the config's control: name the socket)", path, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("send to the agent at %s: %w", path, ctxOr(ctx, err))
	}
	var resp ControlResponse
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, fmt.Errorf("read the agent's answer at %s: %w", path, ctxOr(ctx, err))
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}

// ctxOr returns ctx's cause when ctx ended (a deadline that cut the
// connection), else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// ServeControl serves the control socket at the config's control: path
// until ctx ends, then removes it. It follows reloads: a new path moves
// the socket (the new one is opened before the old one closes). It
// returns when ctx ends and every request it took is answered; `rollcall
// dev` and tests that want no socket just do not call it.
func (a *Agent) ServeControl(ctx context.Context) {
	var (
		cur     *controlSocket
		failing string // the last failure, logged once
		retry   = backoff.New(controlRetry)
		wg      sync.WaitGroup
	)
	defer func() {
		if cur != nil {
			cur.close()
		}
		wg.Wait()
		a.m.controlUp.Set(0)
	}()
	for {
		path := a.Config().Control
		var wait <-chan time.Time
		if path == "" && cur != nil {
			cur.close()
			a.log.Info("control socket closed: no control path configured", "path", cur.path)
			cur = nil
		}
		if path != "" && (cur == nil || cur.path != path) {
			next, err := openControl(path)
			switch {
			case err != nil:
				if msg := err.Error(); msg != failing {
					a.log.Error("control socket not open; drain, undrain and status cannot reach this agent until it is; retrying", "path", path, "err", err)
					failing = msg
				}
				wait = time.After(retry.Next())
			default:
				if cur != nil {
					cur.close()
					a.log.Info("control socket moved", "from", cur.path, "to", path)
				}
				cur, failing = next, ""
				retry.Reset()
				a.log.Info("control socket open", "path", path)
				wg.Go(func() { a.acceptControl(ctx, next) })
			}
		}
		up := 0.0
		if cur != nil && cur.path == path {
			up = 1
		}
		a.m.controlUp.Set(up)
		select {
		case <-ctx.Done():
			return
		case <-a.controlMoved:
		case <-wait:
		}
	}
}

// controlSocket is one open control socket.
type controlSocket struct {
	path string
	ln   *net.UnixListener
	fi   os.FileInfo // the socket file, so that close removes only its own
}

// openControl opens the socket at path, 0600, creating its folder 0755.
// It binds a temporary name in the same folder, sets the mode, then links
// it to path: the socket is never reachable with a wider mode (binding
// path itself would create it with the umask's mode until a chmod), and
// the link fails when path exists, so two agents starting together cannot
// both believe they own it. A path left by a dead agent (nothing answers)
// is replaced; one where an agent answers is an error that says so.
func openControl(path string) (*controlSocket, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the control socket's folder: %w", err)
	}
	// Short (a socket path holds at most 107 bytes, and path may be near
	// that) and unique to this try: several agents of one process (tests)
	// may open sockets in one folder at once.
	tmp := filepath.Join(dir, fmt.Sprintf(".c%d.%d", os.Getpid(), controlTries.Add(1)))
	_ = os.Remove(tmp) // a left-over of a process that had this pid
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", tmp, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*controlSocket, error) {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(fmt.Errorf("restrict the control socket to its owner: %w", err))
	}
	fi, err := os.Lstat(tmp)
	if err != nil {
		return fail(err)
	}
	for try := 0; ; try++ {
		err := os.Link(tmp, path)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || try > 0 {
			return fail(fmt.Errorf("link the control socket to %s: %w", path, err))
		}
		if err := removeStale(path); err != nil {
			return fail(err)
		}
	}
	_ = os.Remove(tmp)
	return &controlSocket{path: path, ln: ln, fi: fi}, nil
}

// removeStale removes the file at path when it is a socket nobody answers
// on (a dead agent's); anything else is an error that says what is there.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("look at %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (%v); remove it or set control: to another path", path, fi.Mode().Type())
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("another agent answers on %s: two servicereg agents run with this control path; stop the other one, or set control: to another path", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s exists and cannot be checked (%w); remove it if no agent runs", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the stale control socket %s: %w", path, err)
	}
	return nil
}

// close stops listening and removes the socket file, if it is still ours
// (another agent may have replaced it meanwhile).
func (s *controlSocket) close() {
	s.ln.Close()
	if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.fi) {
		_ = os.Remove(s.path)
	}
}

// acceptControl answers connections on s until it is closed; each request
// is answered in its own goroutine, bounded by ctx and its timeout.
func (a *Agent) acceptControl(ctx context.Context, s *controlSocket) {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	retry := backoff.New(backoff.Policy{Min: 5 * time.Millisecond, Base: 10 * time.Millisecond, Max: time.Second})
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: pause, don't spin.
			a.log.Warn("control socket: accept failed", "err", err)
			if retry.Wait(ctx) != nil {
				return
			}
			continue
		}
		retry.Reset()
		wg.Go(func() { a.answerControl(ctx, conn) })
	}
}

// answerControl reads one request from conn and writes the answer.
func (a *Agent) answerControl(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(controlReadTimeout))
	var req ControlRequest
	if err := json.NewDecoder(io.LimitReader(conn, controlMaxRequest)).Decode(&req); err != nil {
		writeControl(conn, &ControlResponse{Error: fmt.Sprintf("bad request: %v; send one JSON object such as {\"op\":\"status\"}", err)})
		return
	}
	timeout := controlMaxWait
	if req.TimeoutMS > 0 {
		timeout = min(timeout, time.Duration(req.TimeoutMS)*time.Millisecond)
	}
	rctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("no answer within %v", timeout))
	defer cancel()
	_ = conn.SetDeadline(time.Now().Add(timeout + controlReadTimeout))
	writeControl(conn, a.control(rctx, req))
}

// control carries out one request.
func (a *Agent) control(ctx context.Context, req ControlRequest) *ControlResponse {
	switch req.Op {
	case OpDrain, OpUndrain:
		if req.Service == "" {
			return &ControlResponse{Error: req.Op + ": no service named; send {\"op\":\"" + req.Op + "\",\"service\":\"NAME\"}"}
		}
		f := a.Drain
		if req.Op == OpUndrain {
			f = a.Undrain
		}
		res, err := f(ctx, req.Service)
		if err != nil {
			return &ControlResponse{Error: err.Error()}
		}
		return &ControlResponse{Drain: &res}
	case OpStatus:
		st := a.Status()
		return &ControlResponse{Status: &st}
	}
	return &ControlResponse{Error: fmt.Sprintf("unknown op %q: use %s, %s or %s", req.Op, OpDrain, OpUndrain, OpStatus)}
}

func writeControl(w io.Writer, resp *ControlResponse) {
	_ = json.NewEncoder(w).Encode(resp)
}
