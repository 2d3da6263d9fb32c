package rollcall

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestParseHTTP checks the `http` option: its address, the optional TLS
// files, and errors that name the line and say what to write.
func TestParseHTTP(t *testing.T) {
	f := testkit.NewTLS(t, "scraper")
	tests := []struct {
		name    string
		line    string
		wantErr string // substring; "" for success
		check   func(t *testing.T, h *httpConfig)
	}{
		{name: "address", line: "http 127.0.0.1:8053", check: func(t *testing.T, h *httpConfig) {
			if h.addr != "127.0.0.1:8053" || h.tls != nil || h.where != "Testfile:2" || h.scheme() != "http" {
				t.Errorf("%+v", h)
			}
		}},
		{name: "every address", line: "http :8053"},
		{name: "IPv6", line: "http [::1]:8053"},
		{name: "localhost", line: "http localhost:8053"},
		{name: "TLS", line: fmt.Sprintf("http :8443 %s %s", f.ServerCert, f.ServerKey), check: func(t *testing.T, h *httpConfig) {
			if h.tls == nil || h.tls.ClientAuth != tls.NoClientCert || h.scheme() != "https" {
				t.Errorf("TLS without a CA: %+v", h.tls)
			}
		}},
		{name: "TLS with client CA", line: fmt.Sprintf("http :8443 %s %s %s", f.ServerCert, f.ServerKey, f.CA), check: func(t *testing.T, h *httpConfig) {
			if h.tls == nil || h.tls.ClientAuth != tls.RequireAndVerifyClientCert || h.tls.ClientCAs == nil {
				t.Errorf("TLS with a CA: %+v", h.tls)
			}
		}},
		{name: "no address", line: "http", wantErr: "Testfile:2 - Error during parsing: http needs an address"},
		{name: "two arguments", line: "http :8443 cert.pem", wantErr: "http needs an address, then optionally CERT KEY [CA]"},
		{name: "no port", line: "http 127.0.0.1", wantErr: `http "127.0.0.1" is not HOST:PORT`},
		{name: "bad port", line: "http 127.0.0.1:80800", wantErr: `port "80800" is not a number`},
		{name: "host name", line: "http dns.example.com:8053", wantErr: `"dns.example.com" is not an IP address`},
		{name: "missing certificate", line: "http :8443 nosuch.pem nosuch-key.pem", wantErr: "Testfile:2 - Error during parsing: http :8443: certificate nosuch.pem and key nosuch-key.pem"},
		{name: "CA not PEM", line: fmt.Sprintf("http :8443 %s %s %s", f.ServerCert, f.ServerKey, f.ServerKey), wantErr: "holds no PEM certificate"},
		{name: "twice", line: "http :8053\nhttp :8054", wantErr: "Testfile:3 - Error during parsing: http is given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(caddy.NewTestController("dns", "rollcall {\n"+tt.line+"\n}"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if cfg.http == nil {
				t.Fatal("no http config")
			}
			if tt.check != nil {
				tt.check(t, cfg.http)
			}
		})
	}
}

// TestChangeRing checks that the recent changes keep the latest, newest
// first.
func TestChangeRing(t *testing.T) {
	var r changeRing
	if got := r.latest(); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	for i := 1; i <= maxChanges+5; i++ {
		r.add(httpChange{Rev: int64(i)})
	}
	got := r.latest()
	if len(got) != maxChanges || got[0].Rev != maxChanges+5 || got[maxChanges-1].Rev != 6 {
		t.Errorf("%d changes from %d to %d, want %d from %d to 6", len(got), got[0].Rev, got[len(got)-1].Rev, maxChanges, maxChanges+5)
	}
}

// TestTermOf checks reading the term from a master's packed TXT.
func TestTermOf(t *testing.T) {
	if got := termOf(packTXT("host=h1", "term=12345")); got != 12345 {
		t.Errorf("term %d, want 12345", got)
	}
	if got := termOf([]byte{9, 'x'}); got != 0 {
		t.Errorf("a cut TXT: term %d, want 0", got)
	}
}

// TestJittered checks a blocking query's wait: never shorter than asked,
// at most a sixteenth longer, and spread (the same wait for every query
// would bring back together the clients one change woke together).
func TestJittered(t *testing.T) {
	const wait = 16 * time.Second
	seen := map[time.Duration]bool{}
	for range 100 {
		got := jittered(wait)
		if got < wait || got > wait+wait/16 {
			t.Fatalf("jittered(%v) = %v, want %v to %v", wait, got, wait, wait+wait/16)
		}
		seen[got] = true
	}
	// 100 draws from a second's worth of nanoseconds: fewer than two
	// distinct values means no jitter, not bad luck.
	if len(seen) < 2 {
		t.Errorf("100 waits of %v all came out %v: no jitter", wait, jittered(wait))
	}
	if got := jittered(0); got != 0 {
		t.Errorf("jittered(0) = %v, want 0", got)
	}
}
