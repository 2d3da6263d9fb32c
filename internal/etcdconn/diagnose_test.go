package etcdconn_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/test/testkit"
)

// tlsServer accepts TLS connections on addr with the test server
// certificate, requiring a client certificate of the test CA, and finishes
// each handshake (or fails it) before closing.
func tlsServer(t *testing.T, f *testkit.TLSFiles, addr string) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				var b [1]byte
				_, _ = c.Read(b[:])
			}()
		}
	}()
	return ln.Addr().String()
}

func TestDiagnose(t *testing.T) {
	f := testkit.NewTLS(t, "client")
	other := testkit.NewTLS(t, "client")
	good := tlsServer(t, f, "127.0.0.1:0")
	// The server certificate is for 127.0.0.1, ::1 and localhost only.
	wrongName := tlsServer(t, f, "127.0.0.2:0")
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer plain.Close()
	closed := testkit.FreePort(t)

	certs := etcdconn.Config{Cert: f.ClientCert, Key: f.ClientKey, CA: f.CA}
	with := func(c etcdconn.Config, ep string) etcdconn.Config { c.Endpoints = []string{ep}; return c }
	tests := []struct {
		name string
		cfg  etcdconn.Config
		want string // "" means no finding
	}{
		{name: "all right", cfg: with(certs, "https://"+good)},
		{name: "plaintext to a plaintext server", cfg: with(etcdconn.Config{}, "http://"+plain.Addr().String())},
		{name: "plaintext URL to a TLS server", cfg: with(etcdconn.Config{}, "http://"+good), want: "serves TLS, but the URL says plaintext"},
		{name: "https without certificates", cfg: with(etcdconn.Config{}, "https://"+good), want: "no CA, client certificate or key is configured"},
		{name: "client certificate of another CA", cfg: with(etcdconn.Config{Cert: other.ClientCert, Key: other.ClientKey, CA: f.CA}, "https://"+good),
			want: "etcd refused this client's certificate"},
		{name: "server of another CA", cfg: with(etcdconn.Config{Cert: f.ClientCert, Key: f.ClientKey, CA: other.CA}, "https://"+good),
			want: "not signed by the configured CA"},
		{name: "address not in the server certificate", cfg: with(certs, "https://"+wrongName), want: "not valid for this address"},
		{name: "nothing listening", cfg: with(certs, "https://127.0.0.1:"+strconv.Itoa(closed)), want: "cannot connect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := etcdconn.Diagnose(context.Background(), tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Diagnose: %v, want no finding", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.cfg.Endpoints[0])):
				t.Errorf("Diagnose: %v, want a finding naming %s and saying %q", err, tc.cfg.Endpoints[0], tc.want)
			}
		})
	}
}
