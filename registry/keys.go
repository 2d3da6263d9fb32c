package registry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "/rollcall"

// ErrBadKey is wrapped by every key parsing failure.
var ErrBadKey = errors.New("registry: bad key")

// Keys spells the keys under one prefix. The zero value is not usable; make one
// with NewKeys.
type Keys struct {
	prefix string // no trailing slash, e.g. "/rollcall"
}

// NewKeys returns the key layout under prefix, which must start with '/'. A
// trailing slash is dropped, so "/rollcall" and "/rollcall/" are the same.
// A bad prefix is a *ValueError (class ErrBadKey).
func NewKeys(prefix string) (Keys, error) {
	p := strings.TrimRight(prefix, "/")
	if !strings.HasPrefix(prefix, "/") || p == "" {
		return Keys{}, valueErrorf(ErrBadKey, "prefix %q must start with '/' and name a folder, e.g. %s", prefix, DefaultPrefix)
	}
	if strings.ContainsAny(p, " \t\n") {
		return Keys{}, valueErrorf(ErrBadKey, "prefix %q contains white space: write one such as %s", prefix, DefaultPrefix)
	}
	return Keys{prefix: p}, nil
}

// MustKeys is NewKeys for prefixes known to be valid (constants, tests).
func MustKeys(prefix string) Keys {
	k, err := NewKeys(prefix)
	if err != nil {
		panic(err)
	}
	return k
}

// Prefix returns the prefix without a trailing slash.
func (k Keys) Prefix() string { return k.prefix }

// All is the range prefix of every rollcall key: what the DNS plugin lists and
// watches, and what `etcdctl get --prefix` shows.
func (k Keys) All() string { return k.prefix + "/" }

// Hosts is the range prefix of every host's subtree.
func (k Keys) Hosts() string { return k.prefix + "/hosts/" }

// HostDir is the range prefix of one host's subtree: everything that host's
// agent writes (and, with etcd RBAC, all it may write) apart from elections.
func (k Keys) HostDir(host string) string { return k.prefix + "/hosts/" + host + "/" }

// Host is the key of a host's record.
func (k Keys) Host(host string) string { return k.prefix + "/hosts/" + host + "/host" }

// Instance is the key of a service instance on a host.
func (k Keys) Instance(host, service string) string {
	return k.prefix + "/hosts/" + host + "/services/" + service
}

// Elections is the range prefix of every election.
func (k Keys) Elections() string { return k.prefix + "/elections/" }

// Election is the election prefix of a service in the form
// concurrency.NewElection expects: no trailing slash (it appends one, then the
// candidate's lease ID in hex).
func (k Keys) Election(service string) string { return k.prefix + "/elections/" + service }

// Maintenance is the key of a maintenance record: the whole host when
// service is "", else one instance (registry/health.go).
func (k Keys) Maintenance(host, service string) string {
	if service == "" {
		return k.prefix + "/maintenance/" + host
	}
	return k.prefix + "/maintenance/" + host + "/" + service
}

// MaintenanceDir is the range prefix of every maintenance record: what
// operators may write and hosts may not (deploy/rbac.sh).
func (k Keys) MaintenanceDir() string { return k.prefix + "/maintenance/" }

// Kind says which record a key holds.
type Kind int

// The kinds of key.
const (
	KindUnknown  Kind = iota
	KindHost          // P/hosts/<host>/host
	KindInstance      // P/hosts/<host>/services/<service>
	KindElection      // P/elections/<service>/<lease-hex>
	// KindMaintenance is P/maintenance/<host> (Service "") or
	// P/maintenance/<host>/<service>.
	KindMaintenance
)

func (k Kind) String() string {
	switch k {
	case KindHost:
		return "host"
	case KindInstance:
		return "instance"
	case KindElection:
		return "election"
	case KindMaintenance:
		return "maintenance"
	}
	return "unknown"
}

// Key is a parsed key.
type Key struct {
	Kind    Kind
	Host    string // KindHost, KindInstance, KindMaintenance
	Service string // KindInstance, KindElection, KindMaintenance ("" for a whole host)
	Lease   int64  // KindElection: the candidate's lease ID
}

// Parse splits a key under k's prefix into its parts, validating every name.
// Keys at unexpected depths, with unknown parts or bad names are errors
// wrapping ErrBadKey or ErrBadName, with ReasonKey (DecodeError).
func (k Keys) Parse(key string) (Key, error) {
	pk, err := k.parse(key)
	if err != nil {
		return Key{}, decodeError(ReasonKey, err)
	}
	return pk, nil
}

func (k Keys) parse(key string) (Key, error) {
	rest, ok := strings.CutPrefix(key, k.prefix+"/")
	if !ok {
		return Key{}, fmt.Errorf("%w: %q is not under %s/", ErrBadKey, key, k.prefix)
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && parts[0] == "hosts" && parts[2] == "host":
		if err := CheckName("host", parts[1]); err != nil {
			return Key{}, fmt.Errorf("key %q: %w", key, err)
		}
		return Key{Kind: KindHost, Host: parts[1]}, nil
	case len(parts) == 4 && parts[0] == "hosts" && parts[2] == "services":
		if err := CheckName("host", parts[1]); err != nil {
			return Key{}, fmt.Errorf("key %q: %w", key, err)
		}
		if err := CheckName("service", parts[3]); err != nil {
			return Key{}, fmt.Errorf("key %q: %w", key, err)
		}
		return Key{Kind: KindInstance, Host: parts[1], Service: parts[3]}, nil
	case (len(parts) == 2 || len(parts) == 3) && parts[0] == "maintenance":
		if err := CheckName("host", parts[1]); err != nil {
			return Key{}, fmt.Errorf("key %q: %w", key, err)
		}
		mk := Key{Kind: KindMaintenance, Host: parts[1]}
		if len(parts) == 3 {
			if err := CheckName("service", parts[2]); err != nil {
				return Key{}, fmt.Errorf("key %q: %w", key, err)
			}
			mk.Service = parts[2]
		}
		return mk, nil
	case len(parts) == 3 && parts[0] == "elections":
		if err := CheckName("service", parts[1]); err != nil {
			return Key{}, fmt.Errorf("key %q: %w", key, err)
		}
		lease, err := strconv.ParseInt(parts[2], 16, 64)
		if err != nil || lease <= 0 || len(parts[2]) > 16 {
			return Key{}, fmt.Errorf("%w: %q: election candidate %q is not a lease ID in hex", ErrBadKey, key, parts[2])
		}
		return Key{Kind: KindElection, Service: parts[1], Lease: lease}, nil
	}
	return Key{}, fmt.Errorf("%w: %q matches none of %shosts/<host>/host, %shosts/<host>/services/<service>, %selections/<service>/<lease>, %smaintenance/<host>[/<service>]", ErrBadKey, key, k.All(), k.All(), k.All(), k.All())
}
