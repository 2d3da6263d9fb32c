package etcdconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultEndpoint is where etcd listens when nothing else is configured.
const DefaultEndpoint = "http://127.0.0.1:2379"

// Config says how to reach etcd.
type Config struct {
	Endpoints []string
	// Cert, Key and CA are PEM file paths for mTLS; all three or none.
	Cert, Key, CA string
	// Username and Password, when set, authenticate to etcd with RBAC.
	Username, Password string
	// DialTimeout bounds the first connection; default 5s.
	DialTimeout time.Duration
}

// TLS returns the client TLS config, or nil when no certificate is configured.
func (c Config) TLS() (*tls.Config, error) {
	if c.Cert == "" && c.Key == "" && c.CA == "" {
		return nil, nil
	}
	if c.Cert == "" || c.Key == "" || c.CA == "" {
		return nil, errors.New("etcd TLS needs all three of cert, key and CA: one is missing")
	}
	info := transport.TLSInfo{CertFile: c.Cert, KeyFile: c.Key, TrustedCAFile: c.CA}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS (cert %s, key %s, ca %s): %w", c.Cert, c.Key, c.CA, err)
	}
	return cfg, nil
}

// New returns a client for c. It does not wait for a connection: clientv3
// connects in the background and every call then carries its own context.
func New(c Config) (*clientv3.Client, error) {
	eps := c.Endpoints
	if len(eps) == 0 {
		eps = []string{DefaultEndpoint}
	}
	tlsCfg, err := c.TLS()
	if err != nil {
		return nil, err
	}
	dt := c.DialTimeout
	if dt == 0 {
		dt = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		TLS:                  tlsCfg,
		Username:             c.Username,
		Password:             c.Password,
		DialTimeout:          dt,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		DialOptions:          dialOptions(),
		AutoSyncInterval:     0,
		Logger:               quietLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", eps, err)
	}
	return cli, nil
}

// quietLogger keeps clientv3's own zap logging to errors: rollcall logs the
// state changes that matter itself, once each, instead of a line per retry.
func quietLogger() *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zapcore.ErrorLevel)
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l
}
