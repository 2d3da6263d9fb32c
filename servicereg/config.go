package servicereg

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
	healthcheck "github.com/rollcall/rollcall/internal/health"
	"github.com/rollcall/rollcall/registry"
)

// Defaults of the agent config (servicereg/README.md, "Config").
const (
	DefaultConfigPath = "/etc/servicereg/servicereg.yml"
	DefaultTTL        = 10 * time.Second
	SystemdSystem     = "system"
	SystemdUser       = "user"
	// ServicesDir is the folder beside the config file whose *.yml files each
	// hold a YAML list of more services.
	ServicesDir = "services.d"
	// DefaultControl is the agent's local control socket (drain, undrain,
	// status): under /run, so it is gone after a reboot like the agent's state.
	DefaultControl = "/run/servicereg/control.sock"
	// DefaultDNSTTL is the TTL of rollcall's DNS answers (the Corefile's
	// ttl): how long a resolver may still hand out an instance after it
	// stops being served, so how long a drain waits before the stop.
	DefaultDNSTTL = 5 * time.Second
	// DefaultCheckConcurrency bounds the health checks running at once.
	DefaultCheckConcurrency = healthcheck.DefaultMaxConcurrent
	// DefaultStateWriteRate and DefaultStateWriteBurst pace the agent's
	// writes of instance states to etcd: a flapping check on every host
	// must not become a write storm on etcd, while a few changes at once
	// (a deploy) go through without delay.
	DefaultStateWriteRate  = 1.0
	DefaultStateWriteBurst = 5
	// MaxMinActive bounds min_active: a unit active for an hour is not
	// starting up any more.
	MaxMinActive = time.Hour
	// MaxDNSTTL bounds dns_ttl: a drain waits it out, and a stop that
	// waits longer than this is a hung stop.
	MaxDNSTTL = time.Hour
	// MaxCheckConcurrency bounds check_concurrency.
	MaxCheckConcurrency = 1024
	// MaxStateWriteRate and MaxStateWriteBurst bound the state write pace:
	// beyond them it no longer protects etcd.
	MaxStateWriteRate  = 1000.0
	MaxStateWriteBurst = 1000
	// maxSocketPath is the longest path a unix socket address holds
	// (sun_path is 108 bytes with the closing NUL).
	maxSocketPath = 107
)

// Config is the agent's configuration: one YAML file plus the services of
// services.d/*.yml beside it. LoadConfig fills it with defaults applied; a
// Config built in code is completed and checked by New (see Normalize).
type Config struct {
	// Path is the file the config was loaded from ("" when built in code).
	Path string `yaml:"-"`

	Host    string        `yaml:"host"`
	Etcd    EtcdConfig    `yaml:"etcd"`
	Prefix  string        `yaml:"prefix"`
	TTL     time.Duration `yaml:"ttl"`
	Systemd string        `yaml:"systemd"`
	// Networks sort detected addresses: an address goes to the first network
	// (in file order) one of whose CIDRs holds it, else to "public".
	Networks Networks `yaml:"networks"`
	// Addrs are explicit addresses per network; a network listed here takes
	// exactly these, and detected addresses of that network are dropped.
	Addrs registry.Addrs `yaml:"addrs"`
	// Control is the path of the local control socket (drain, undrain,
	// status); default DefaultControl.
	Control string `yaml:"control"`
	// DNSTTL is the TTL of rollcall's DNS answers, which a drain waits out
	// before the service stops; default DefaultDNSTTL.
	DNSTTL time.Duration `yaml:"dns_ttl"`
	// CheckConcurrency bounds the health checks running at once on this
	// host; default DefaultCheckConcurrency.
	CheckConcurrency int `yaml:"check_concurrency"`
	// StateWriteRate (writes per second) and StateWriteBurst pace the
	// writes of instance state changes to etcd.
	StateWriteRate  float64   `yaml:"state_write_rate"`
	StateWriteBurst int       `yaml:"state_write_burst"`
	Services        []Service `yaml:"services"`

	// dnsTTLSet says dns_ttl was written, so that an explicit 0 (a
	// Corefile with ttl 0) is not taken for "use the default".
	dnsTTLSet bool
}

// EtcdConfig says how the agent reaches etcd.
type EtcdConfig struct {
	Endpoints []string `yaml:"endpoints"`
	Cert      string   `yaml:"cert,omitempty"`
	Key       string   `yaml:"key,omitempty"`
	CA        string   `yaml:"ca,omitempty"`
}

// Network is one named network and the CIDRs that make it up.
type Network struct {
	Name  string
	CIDRs []netip.Prefix
}

// Networks are the named networks in file order: a YAML mapping of name to
// CIDRs, whose order decides which network takes an address.
type Networks []Network

// MarshalYAML writes the networks as they are read: a mapping in file order,
// each network's CIDRs on one line.
func (ns Networks) MarshalYAML() (any, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, nw := range ns {
		v := &yaml.Node{}
		if err := v.Encode(nw.CIDRs); err != nil {
			return nil, fmt.Errorf("network %s: %w", nw.Name, err)
		}
		v.Style = yaml.FlowStyle
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: nw.Name}, v)
	}
	return m, nil
}

// Checks are a service's health checks, written back in the YAML form
// they are read in (configparse.go).
type Checks []healthcheck.Spec

// MarshalYAML writes each check as it is read: its kind as the key of its
// target (exec: its argv on one line), then its timing.
func (cs Checks) MarshalYAML() (any, error) {
	list := &yaml.Node{Kind: yaml.SequenceNode}
	for _, c := range cs {
		item := &yaml.Node{Kind: yaml.MappingNode}
		add := func(key string, value any, flow bool) error {
			v := &yaml.Node{}
			if err := v.Encode(value); err != nil {
				return fmt.Errorf("check %s: %s: %w", c, key, err)
			}
			if flow {
				v.Style = yaml.FlowStyle
			}
			item.Content = append(item.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
			return nil
		}
		var target any = c.Target
		if c.Kind == healthcheck.KindExec {
			target = c.Argv
		}
		for _, kv := range []struct {
			key   string
			value any
		}{
			{string(c.Kind), target},
			{"interval", c.Interval.String()},
			{"timeout", c.Timeout.String()},
			{"rise", c.Rise},
			{"fall", c.Fall},
		} {
			if err := add(kv.key, kv.value, kv.key == string(c.Kind)); err != nil {
				return nil, err
			}
		}
		list.Content = append(list.Content, item)
	}
	return list, nil
}

// Service is one service the agent registers while its unit is active.
type Service struct {
	Name string `yaml:"name"`
	// Unit is the systemd unit watched; default <name>.service.
	Unit  string          `yaml:"unit"`
	Ports []registry.Port `yaml:"ports,omitempty"`
	Shard string          `yaml:"shard,omitempty"`
	// MasterElection makes the agent campaign for <name>-master while the
	// service is present; OnMaster/OnStandby are argv run on each change.
	MasterElection bool     `yaml:"master_election,omitempty"`
	OnMaster       []string `yaml:"on_master,omitempty"`
	OnStandby      []string `yaml:"on_standby,omitempty"`
	// MinActive is how long the unit must stay active before its first
	// registration; 0 registers at once.
	MinActive time.Duration `yaml:"min_active,omitempty"`
	// Checks are the service's health checks; none means active is passing.
	Checks Checks `yaml:"checks,omitempty"`

	// Source is where the service was defined ("file:line"), for messages.
	Source string `yaml:"-"`
}

// Etcdconn returns the etcd connection settings.
func (c *Config) Etcdconn() etcdconn.Config {
	return etcdconn.Config{Endpoints: c.Etcd.Endpoints, Cert: c.Etcd.Cert, Key: c.Etcd.Key, CA: c.Etcd.CA}
}

// Keys returns the key layout under the configured prefix.
func (c *Config) Keys() registry.Keys {
	k, err := registry.NewKeys(c.Prefix)
	if err != nil {
		// Normalize has checked the prefix; an unchecked Config is a bug.
		return registry.MustKeys(registry.DefaultPrefix)
	}
	return k
}

// Normalize fills in defaults (host name, endpoints, prefix, TTL, systemd,
// units) and checks every value, returning all problems at once. LoadConfig
// has done it already; New does it for configs built in code.
func (c *Config) Normalize() error {
	var ps problemList
	if c.Host == "" {
		h, err := DefaultHost()
		ps.add("host", err)
		c.Host = h
	} else {
		ps.add("host", registry.CheckName("host", c.Host))
	}
	c.defaults()
	for i, ep := range c.Etcd.Endpoints {
		ps.add(fmt.Sprintf("etcd.endpoints[%d]", i), checkEndpoint(ep))
	}
	ps.add("etcd", checkTLSFiles(c.Etcd))
	ps.add("prefix", checkPrefix(c.Prefix))
	ps.add("ttl", checkTTL(c.TTL))
	ps.add("systemd", checkSystemd(c.Systemd))
	ps.add("control", checkControl(c.Control))
	ps.add("dns_ttl", checkDNSTTL(c.DNSTTL))
	ps.add("check_concurrency", checkConcurrency(c.CheckConcurrency))
	ps.add("state_write_rate", checkStateWriteRate(c.StateWriteRate))
	ps.add("state_write_burst", checkStateWriteBurst(c.StateWriteBurst))
	c.checkNetworks(&ps)
	seen := map[string]bool{}
	for i := range c.Services {
		s := &c.Services[i]
		where := fmt.Sprintf("services[%d]", i)
		if s.Source != "" {
			where = s.Source
		}
		ps.add(where, s.check())
		if seen[s.Name] {
			ps.add(where, fmt.Errorf("service %q is defined twice: service names must be unique", s.Name))
		}
		seen[s.Name] = true
	}
	return ps.err()
}

// defaults fills in what the config leaves out, but the host name.
func (c *Config) defaults() {
	if len(c.Etcd.Endpoints) == 0 {
		c.Etcd.Endpoints = []string{etcdconn.DefaultEndpoint}
	}
	if c.Prefix == "" {
		c.Prefix = registry.DefaultPrefix
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Systemd == "" {
		c.Systemd = SystemdSystem
	}
	if c.Control == "" {
		c.Control = DefaultControl
	}
	if c.DNSTTL == 0 && !c.dnsTTLSet {
		c.DNSTTL = DefaultDNSTTL
	}
	if c.CheckConcurrency == 0 {
		c.CheckConcurrency = DefaultCheckConcurrency
	}
	if c.StateWriteRate == 0 {
		c.StateWriteRate = DefaultStateWriteRate
	}
	if c.StateWriteBurst == 0 {
		c.StateWriteBurst = DefaultStateWriteBurst
	}
	for i := range c.Services {
		s := &c.Services[i]
		if s.Unit == "" {
			s.Unit = s.Name + ".service"
		}
		for j := range s.Checks {
			s.Checks[j].SetDefaults()
		}
	}
}

// checkNetworks checks networks and addrs: the names, the CIDRs and
// addresses (registry's checks), and that the host record they make fits.
func (c *Config) checkNetworks(ps *problemList) {
	seen := map[string]bool{}
	for i, nw := range c.Networks {
		ps.add(fmt.Sprintf("networks[%d]", i), registry.CheckName("network", nw.Name))
		if seen[nw.Name] {
			ps.add("networks."+nw.Name, errors.New("network is listed twice"))
		}
		seen[nw.Name] = true
		for j, p := range nw.CIDRs {
			ps.add(fmt.Sprintf("networks.%s[%d]", nw.Name, j), registry.CheckCIDR(p))
		}
	}
	if n := len(c.Networks) + len(c.Addrs) + 1; n > registry.MaxNetworks {
		ps.add("networks", fmt.Errorf("networks and addrs name up to %d networks (with public); a host record holds at most %d", n, registry.MaxNetworks))
	}
	for _, nw := range c.Addrs.Networks() {
		ps.add("addrs", registry.CheckName("network", nw))
		if len(c.Addrs[nw]) > registry.MaxAddrsPerNet {
			ps.add("addrs."+nw, fmt.Errorf("%d addresses, at most %d per network", len(c.Addrs[nw]), registry.MaxAddrsPerNet))
		}
		for j, a := range c.Addrs[nw] {
			ps.add(fmt.Sprintf("addrs.%s[%d]", nw, j), registry.CheckAddr(a))
		}
	}
}

// check validates one service after its defaults are set. Each problem is
// a *fieldError naming the field.
func (s *Service) check() error {
	var ps problemList
	ps.add("name", registry.CheckName("service", s.Name))
	ps.add("unit", checkUnit(s.Unit))
	if s.Shard != "" {
		ps.add("shard", registry.CheckName("shard", s.Shard))
	}
	ps.add("ports", registry.ValidatePorts(s.Ports))
	ps.add("on_master", checkHook(s.OnMaster, s.MasterElection))
	ps.add("on_standby", checkHook(s.OnStandby, s.MasterElection))
	ps.add("min_active", checkMinActive(s.MinActive))
	for i, c := range s.Checks {
		where := fmt.Sprintf("checks[%d]", i)
		if c.Source != "" {
			where += " (" + c.Source + ")"
		}
		ps.add(where, c.Validate())
	}
	return ps.err()
}

// DefaultHost returns the machine's short host name, lower-cased, checked to
// be a DNS label.
func DefaultHost() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("read the system host name: %w; set host: in the config", err)
	}
	short, _, _ := strings.Cut(h, ".")
	short = strings.ToLower(short)
	if err := registry.CheckName("host", short); err != nil {
		// registry.Problem: the message is for a person fixing a config.
		return "", fmt.Errorf("the system host name %q does not give a valid name (%s); set host: in the config", h, registry.Problem(err))
	}
	return short, nil
}

// fieldError is a problem with one config field, path saying which ("ttl",
// "services[0]: unit"). Its message is the check's own words
// (registry.Problem): registry's class ("registry: bad name:") says nothing
// to someone fixing a config, and errors.Is still finds it.
type fieldError struct {
	path string
	err  error
}

func (e *fieldError) Error() string { return e.path + ": " + registry.Problem(e.err) }
func (e *fieldError) Unwrap() error { return e.err }

// problemList collects the problems of a config, each under its field path.
type problemList []error

// add adds each problem of err (if any) under path. A problem that has a
// path of its own (a *fieldError, from Service.check) keeps it after path.
func (l *problemList) add(path string, err error) {
	for _, e := range problems(err) {
		if fe, ok := e.(*fieldError); ok {
			e = &fieldError{path: path + ": " + fe.path, err: fe.err}
		} else {
			e = &fieldError{path: path, err: e}
		}
		*l = append(*l, e)
	}
}

func (l problemList) err() error { return errors.Join(l...) }

// problems splits err into the problems it joins (errors.Join), so that each
// is reported on its own line with its own place; nil has none.
func problems(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// The checks of names, ports, addresses and CIDRs are registry's (its Check*
// and Parse* functions): the agent refuses exactly what a reader would skip.
// The checks below are of what only the agent has; they return errors that
// say what is allowed, the parser adds the file and line, Normalize the
// field path.

func checkEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("endpoint %q must be a URL like http://127.0.0.1:2379 or https://10.0.0.1:2379", ep)
	}
	return nil
}

// checkTLSFiles checks that cert, key and ca come together. Whether the
// files can be read is checked when the agent connects (etcdconn), so that
// example configs check out on machines without the certificates.
func checkTLSFiles(e EtcdConfig) error {
	n := 0
	for _, f := range []string{e.Cert, e.Key, e.CA} {
		if f != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		return errors.New("cert, key and ca go together: set all three for mTLS, or none")
	}
	return nil
}

func checkPrefix(p string) error {
	_, err := registry.NewKeys(p)
	return err
}

func checkTTL(d time.Duration) error {
	if d < time.Second || d%time.Second != 0 {
		return fmt.Errorf("ttl %v must be whole seconds, at least 1s (etcd leases count seconds), e.g. 10s", d)
	}
	if d > 24*time.Hour {
		return fmt.Errorf("ttl %v is longer than a day: a dead host would stay registered that long", d)
	}
	return nil
}

func checkSystemd(s string) error {
	if s != SystemdSystem && s != SystemdUser {
		return fmt.Errorf("systemd %q must be %q or %q", s, SystemdSystem, SystemdUser)
	}
	return nil
}

func checkControl(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("control %q must be an absolute path such as %s", p, DefaultControl)
	}
	if len(p) > maxSocketPath {
		return fmt.Errorf("control %.40q... is %d bytes: a unix socket path holds at most %d; use a shorter one such as %s", p, len(p), maxSocketPath, DefaultControl)
	}
	if strings.ContainsRune(p, 0) {
		return errors.New("control holds a NUL byte: write a plain path")
	}
	return nil
}

func checkDNSTTL(d time.Duration) error {
	if d < 0 || d > MaxDNSTTL || d%time.Second != 0 {
		return fmt.Errorf("dns_ttl %v must be whole seconds from 0s to %v (the ttl of the Corefile's rollcall block), e.g. %v", d, MaxDNSTTL, DefaultDNSTTL)
	}
	return nil
}

func checkConcurrency(n int) error {
	if n < 1 || n > MaxCheckConcurrency {
		return fmt.Errorf("check_concurrency %d must be from 1 to %d (health checks running at once), e.g. %d", n, MaxCheckConcurrency, DefaultCheckConcurrency)
	}
	return nil
}

func checkStateWriteRate(r float64) error {
	if !(r > 0 && r <= MaxStateWriteRate) {
		return fmt.Errorf("state_write_rate %v must be above 0 and at most %v (state writes to etcd per second), e.g. %v", r, MaxStateWriteRate, DefaultStateWriteRate)
	}
	return nil
}

func checkStateWriteBurst(n int) error {
	if n < 1 || n > MaxStateWriteBurst {
		return fmt.Errorf("state_write_burst %d must be from 1 to %d (state writes let through at once), e.g. %d", n, MaxStateWriteBurst, DefaultStateWriteBurst)
	}
	return nil
}

func checkMinActive(d time.Duration) error {
	if d < 0 || d > MaxMinActive {
		return fmt.Errorf("min_active %v must be from 0s to %v (how long a unit stays active before it is registered), e.g. 2s", d, MaxMinActive)
	}
	return nil
}

// unitSuffixes are the unit types whose ActiveState means "running".
var unitSuffixes = []string{".service", ".socket", ".target", ".timer", ".mount", ".path", ".scope", ".slice", ".swap", ".automount", ".device"}

func checkUnit(u string) error {
	if u == "" {
		return errors.New("unit is empty")
	}
	if len(u) > 255 {
		return fmt.Errorf("unit %.20q... is longer than 255 characters", u)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":-_.\\@", c) >= 0) {
			return fmt.Errorf("unit %q has the character %q, which systemd unit names cannot hold", u, c)
		}
	}
	for _, sfx := range unitSuffixes {
		if strings.HasSuffix(u, sfx) && len(u) > len(sfx) {
			return nil
		}
	}
	return fmt.Errorf("unit %q needs a unit type suffix such as .service", u)
}

// checkHook checks a hook's argv; none (nil or empty) is no hook.
func checkHook(argv []string, election bool) error {
	if len(argv) == 0 {
		return nil
	}
	var errs []error
	if argv[0] == "" {
		errs = append(errs, errors.New(`the command (first element) is empty: give the command as a list: ["/path/to/cmd", "arg"]`))
	}
	if !election {
		errs = append(errs, errors.New("hooks run on master changes: set master_election: true, or drop the hook"))
	}
	return errors.Join(errs...)
}

// YAML returns the config as YAML with every default spelled out: what
// `servicereg -check` prints. The yaml tags of Config and the types it holds
// are the schema written; the parser reads the same names (configparse.go).
func (c *Config) YAML() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, fmt.Errorf("effective config: %w", err)
	}
	// Say where each service came from: services.d files make that useful.
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "services" {
			continue
		}
		for j, item := range doc.Content[i+1].Content {
			if j < len(c.Services) && c.Services[j].Source != "" {
				item.HeadComment = "from " + c.Services[j].Source
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("effective config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("effective config: %w", err)
	}
	return buf.Bytes(), nil
}
