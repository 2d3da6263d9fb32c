package etcdconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// probeTimeout bounds one endpoint's probe (dial, handshake, first read).
const probeTimeout = 2 * time.Second

// Diagnose says why c cannot talk to etcd when the cause is the connection
// set-up, which clientv3 hides: it retries in the background, so a call made
// over plaintext to a TLS member, without a client certificate, or trusting
// the wrong CA only ever fails with "context deadline exceeded". Diagnose
// dials each endpoint once and joins one error per endpoint with a problem,
// each naming the endpoint's URL and what to fix: a plaintext URL to a TLS
// member, missing or refused client certificates, an untrusted or misnamed
// server certificate, or a connection that cannot be opened. It returns nil
// when it finds nothing wrong (a member that answers the configured TLS, or
// plaintext to an http:// URL, is fine). It only opens TCP and TLS
// connections and sends no request; call it after a failure, not on every
// call. Each endpoint takes at most 2s, less when ctx ends sooner.
func Diagnose(ctx context.Context, c Config) error {
	eps := c.Endpoints
	if len(eps) == 0 {
		eps = []string{DefaultEndpoint}
	}
	tlsCfg, err := c.TLS()
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		if err := probe(ctx, ep, tlsCfg); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// probe checks one endpoint; see Diagnose.
func probe(ctx context.Context, ep string, tlsCfg *tls.Config) error {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return fmt.Errorf("etcd endpoint %q is not a URL like %s", ep, DefaultEndpoint)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return fmt.Errorf("etcd %s: cannot connect: %w", ep, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	switch u.Scheme {
	case "http":
		// Only the question "does it speak TLS?" is asked and no data
		// is sent, so the server's certificate is not checked here.
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
		if tc.HandshakeContext(ctx) == nil {
			fix := "write https://" + u.Host
			if tlsCfg == nil {
				fix += " and give a client certificate, key and CA"
			}
			return fmt.Errorf("etcd %s serves TLS, but the URL says plaintext (http://): %s", ep, fix)
		}
		return nil
	case "https":
	default:
		return fmt.Errorf("etcd endpoint %q: the scheme must be http:// or https://", ep)
	}
	cfg := &tls.Config{}
	if tlsCfg != nil {
		cfg = tlsCfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	tc := tls.Client(conn, cfg)
	err = tc.HandshakeContext(ctx)
	if err == nil {
		// With TLS 1.3 the server judges the client's certificate after
		// the client's handshake is done, and says so in an alert that
		// the first read returns.
		var one [1]byte
		rd := time.Now().Add(probeTimeout / 2)
		if dl, ok := ctx.Deadline(); ok && dl.Before(rd) {
			rd = dl
		}
		_ = tc.SetReadDeadline(rd)
		_, err = tc.Read(one[:])
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
	}
	return tlsAdvice(ep, tlsCfg != nil, err)
}

// tlsAdvice turns a failed TLS handshake with an https:// endpoint into what
// to fix. haveCerts says whether a certificate, key and CA are configured.
func tlsAdvice(ep string, haveCerts bool, err error) error {
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	// A received alert is an unexported type inside a net.OpError whose Op
	// is "remote error"; its text names the alert.
	var op *net.OpError
	remote := errors.As(err, &op) && op.Op == "remote error"
	switch {
	case errors.As(err, &unknownAuth) && !haveCerts:
		return fmt.Errorf("etcd %s: TLS: its certificate is signed by a CA this client does not trust, and no CA, client certificate or key is configured: give all three (%w)", ep, err)
	case errors.As(err, &unknownAuth):
		return fmt.Errorf("etcd %s: TLS: its certificate is not signed by the configured CA: give the CA that signed etcd's server certificate (%w)", ep, err)
	case errors.As(err, &hostErr):
		return fmt.Errorf("etcd %s: TLS: its certificate is not valid for this address: use a URL with a name or IP in the certificate (%w)", ep, err)
	case remote && (!haveCerts || strings.Contains(op.Err.Error(), "certificate required")):
		return fmt.Errorf("etcd %s: TLS: etcd requires a client certificate and none is configured: give a client certificate, key and CA (%w)", ep, err)
	case remote:
		return fmt.Errorf("etcd %s: TLS: etcd refused this client's certificate (is it signed by a CA etcd trusts, and valid for client use?) (%w)", ep, err)
	}
	if err != nil {
		return fmt.Errorf("etcd %s: TLS handshake failed: %w", ep, err)
	}
	return nil
}
