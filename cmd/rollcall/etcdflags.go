package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
)

// EnvEndpoints, when set, replaces the default of -endpoints in every
// command, so that one export points them all at the same cluster.
const EnvEndpoints = "ROLLCALL_ENDPOINTS"

// etcdFlags are the flags of every command that talks to an existing etcd
// cluster (ls, status, elect): one set of names, defaults, help and checks.
// Go's flag package takes each as -name or --name alike.
//
// Set dash, withUser and withTimeout, then register the flags on the
// command's flag set; after parsing, config checks them and gives the etcd
// client's config and the registry's keys.
type etcdFlags struct {
	// dash is how the command's usage text spells its flags, "-" or "--",
	// so that an error names the flag the way the user read it.
	dash string
	// withUser adds -user NAME:PASSWORD, for etcd with password auth.
	withUser bool
	// withTimeout adds -timeout, for a command that reads etcd once and
	// gives up after that long.
	withTimeout bool

	endpoints string
	prefix    string
	cert      string
	key       string
	cacert    string
	user      string
	timeout   time.Duration
}

// register adds the flags to fs.
func (f *etcdFlags) register(fs *flag.FlagSet) {
	def := os.Getenv(EnvEndpoints)
	if def == "" {
		def = etcdconn.DefaultEndpoint
	}
	fs.StringVar(&f.endpoints, "endpoints", def, "etcd client URLs, comma-separated (default from $"+EnvEndpoints+" when set)")
	fs.StringVar(&f.prefix, "prefix", registry.DefaultPrefix, "key prefix of the registry in etcd")
	fs.StringVar(&f.cert, "cert", "", "client certificate (PEM) for mTLS to etcd")
	fs.StringVar(&f.key, "key", "", "client key (PEM) for mTLS to etcd")
	fs.StringVar(&f.cacert, "cacert", "", "CA certificate (PEM) that signed etcd's server certificate")
	if f.withUser {
		fs.StringVar(&f.user, "user", "", "etcd user as NAME:PASSWORD, when etcd has auth enabled without client certificates")
	}
	if f.withTimeout {
		fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "give up reading etcd after this long")
	}
}

// config checks the parsed flags; every error names its flag.
func (f *etcdFlags) config() (etcdconn.Config, registry.Keys, error) {
	var cfg etcdconn.Config
	for _, ep := range strings.Split(f.endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			cfg.Endpoints = append(cfg.Endpoints, ep)
		}
	}
	if len(cfg.Endpoints) == 0 {
		return cfg, registry.Keys{}, errors.New(f.dash + "endpoints is empty: give etcd client URLs, e.g. " + etcdconn.DefaultEndpoint)
	}
	cfg.Cert, cfg.Key, cfg.CA = f.cert, f.key, f.cacert
	if f.user != "" {
		name, pw, ok := strings.Cut(f.user, ":")
		if !ok || name == "" {
			return cfg, registry.Keys{}, errors.New(f.dash + "user must be NAME:PASSWORD")
		}
		cfg.Username, cfg.Password = name, pw
	}
	keys, err := registry.NewKeys(f.prefix)
	if err != nil {
		return cfg, registry.Keys{}, fmt.Errorf("%sprefix: %w", f.dash, err)
	}
	return cfg, keys, nil
}
