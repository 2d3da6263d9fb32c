package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/test/testkit"
)

// bannerWriter closes up when the banner has been written.
type bannerWriter struct {
	mu   sync.Mutex
	b    strings.Builder
	once sync.Once
	up   chan struct{}
}

func (w *bannerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), "Ctrl-C") {
		w.once.Do(func() { close(w.up) })
	}
	return len(p), nil
}

func (w *bannerWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestRun runs the dev system in-process (so the race detector sees it
// whole): it comes up, answers the demo name, and returns nil once its
// context ends.
func TestRun(t *testing.T) {
	out := &bannerWriter{up: make(chan struct{})}
	cfg := Config{
		DataDir:   filepath.Join(t.TempDir(), "dev"),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", testkit.FreePort(t)),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", testkit.FreePort(t)),
		DNSAddr:   fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		HTTPAddr:  fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		Host:      "devbox",
		Out:       out,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case <-out.up:
	case err := <-done:
		t.Fatalf("Run returned before it was up: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("no banner after 2 minutes")
	}
	r := testkit.Query(t, "udp", cfg.DNSAddr, "", "demo."+DefaultZone, dns.TypeA)
	if r.Rcode != dns.RcodeSuccess {
		t.Errorf("demo: rcode %s", dns.RcodeToString[r.Rcode])
	}
	r = testkit.Query(t, "tcp", cfg.DNSAddr, "", "devbox.demo."+DefaultZone, dns.TypeA)
	if r.Rcode != dns.RcodeSuccess {
		t.Errorf("devbox.demo: rcode %s", dns.RcodeToString[r.Rcode])
	}
	statusURL := "http://" + cfg.HTTPAddr + "/"
	if !strings.Contains(out.String(), "Status page: "+statusURL) {
		t.Errorf("banner lacks the status page's URL %s:\n%s", statusURL, out.String())
	}
	if page := httpGet(t, statusURL); !strings.Contains(page, `id="svc-demo"`) || !strings.Contains(page, "devbox") {
		t.Errorf("status page lacks the demo service on devbox:\n%s", page)
	}

	// A second system on the same data folder is refused at once.
	other := cfg
	other.ClientURL = fmt.Sprintf("http://127.0.0.1:%d", testkit.FreePort(t))
	other.PeerURL = fmt.Sprintf("http://127.0.0.1:%d", testkit.FreePort(t))
	other.DNSAddr = fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	other.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	if err := Run(ctx, other); err == nil || !strings.Contains(err.Error(), "in use by another rollcall dev") {
		t.Errorf("second Run on the same folder: %v, want an in-use error", err)
	}
	// And one on a taken port says so.
	other.DataDir = filepath.Join(t.TempDir(), "other")
	other.DNSAddr = cfg.DNSAddr
	if err := Run(ctx, other); !errors.Is(err, ErrPortTaken) {
		t.Errorf("Run on a taken DNS port: %v, want ErrPortTaken", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Run still running 2 minutes after cancel")
	}
}

// httpGet returns the body of a GET that must answer 200.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}
