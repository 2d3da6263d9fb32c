package servicereg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
	healthcheck "github.com/rollcall/rollcall/internal/health"
	"github.com/rollcall/rollcall/registry"
)

// ConfigError is one problem in a config file, with the line to fix.
type ConfigError struct {
	File string
	Line int // 0 when the problem has no line (a missing default)
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// maxConfigSize bounds a config file: a config is a few kilobytes.
const maxConfigSize = 1 << 20

// LoadConfig reads the agent config at path and the services of every
// services.d/*.yml beside it (each file a YAML list of services), applies the
// defaults and checks everything. It returns all problems at once, each as
// "file:line: what is wrong and what to write instead".
func LoadConfig(path string) (*Config, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	p := &parser{}
	cfg := p.parseMain(path, data)
	dir := filepath.Join(filepath.Dir(path), ServicesDir)
	files, err := filepath.Glob(filepath.Join(dir, "*.yml"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := readLimited(f)
		if err != nil {
			return nil, fmt.Errorf("read services file: %w", err)
		}
		cfg.Services = append(cfg.Services, p.parseServicesFile(f, data)...)
	}
	return p.finish(cfg, path)
}

// finish checks what spans files (unique services), then normalizes cfg,
// read from the main config file path, if nothing was wrong so far.
func (p *parser) finish(cfg *Config, path string) (*Config, error) {
	p.checkUnique(cfg.Services)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	cfg.Path = path
	if err := cfg.Normalize(); err != nil {
		return nil, inFile(path, err)
	}
	return cfg, nil
}

// inFile attributes each of the (joined) errors of Normalize to file: those
// are the problems without a line, such as a host name with no default.
func inFile(file string, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			errs = append(errs, &ConfigError{File: file, Msg: e.Error()})
		}
		return errors.Join(errs...)
	}
	return &ConfigError{File: file, Msg: err.Error()}
}

// ParseConfig parses one main config file's content (without services.d) and
// normalizes it; name is used in messages. LoadConfig is the usual entry.
func ParseConfig(name string, data []byte) (*Config, error) {
	p := &parser{}
	return p.finish(p.parseMain(name, data), name)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; a config is a few kilobytes", path, maxConfigSize)
	}
	return data, nil
}

// parser walks yaml.Node trees so that every message carries the line of the
// value to fix, and collects every problem instead of stopping at the first.
type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// document decodes one YAML document into a node; nil means empty (comments only).
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		p.errs = append(p.errs, &ConfigError{File: p.file, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")})
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p.errorf(&extra, "a second YAML document ('---'): put everything in one")
		return nil
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		return doc.Content[0]
	}
	return &doc
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "something else"
}

// usable refuses aliases: they would let a small file expand into a huge one,
// and a config gains nothing from them.
func (p *parser) usable(n *yaml.Node, what string) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		p.errorf(n, "%s: YAML anchors and aliases are not supported here: write the value out", what)
		return false
	}
	return true
}

// field is one key a YAML mapping may hold, and what to do with its value.
// The parser's tables of fields are the schema as read; the yaml tags of
// Config, EtcdConfig, Service and registry.Port are the schema as written
// (Config.YAML), and a test holds the two to the same names.
type field struct {
	name  string
	parse func(v *yaml.Node)
}

// fields walks a mapping whose keys are fs, refusing unknown and repeated keys.
func (p *parser) fields(n *yaml.Node, what string, fs []field) {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	p.entries(n, what, names, func(key string, v *yaml.Node) {
		for _, f := range fs {
			if f.name == key {
				f.parse(v)
				return
			}
		}
	})
}

// entries walks a mapping, refusing repeated keys and, unless known is nil,
// keys not in known.
func (p *parser) entries(n *yaml.Node, what string, known []string, each func(key string, v *yaml.Node)) {
	if !p.usable(n, what) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping (key: value lines), not %s", what, kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s: a key must be a plain word", what)
			continue
		}
		name := k.Value
		if known != nil && !slices.Contains(known, name) {
			p.errorf(k, "%s: unknown field %q; known fields are: %s", what, name, strings.Join(known, ", "))
			continue
		}
		if line, dup := seen[name]; dup {
			p.errorf(k, "%s: %q is set twice (first on line %d)", what, name, line)
			continue
		}
		seen[name] = k.Line
		if !p.usable(v, what+"."+name) {
			continue
		}
		each(name, v)
	}
}

func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s must be a single value, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// checked reads a single value and reports at its line what check finds
// wrong with it. The value is returned either way: Normalize does not run
// when the parser found a problem.
func (p *parser) checked(n *yaml.Node, what string, check func(string) error) string {
	s, ok := p.str(n, what)
	if ok {
		p.check(n, what, check(s))
	}
	return s
}

// isName is the check of a name of the given kind ("host", "service", ...).
func isName(kind string) func(string) error {
	return func(s string) error { return registry.CheckName(kind, s) }
}

func (p *parser) strList(n *yaml.Node, what string) ([]string, bool) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list such as [\"a\", \"b\"], not %s", what, kindName(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, e := range n.Content {
		if !p.usable(e, what) {
			ok = false
			continue
		}
		s, good := p.str(e, fmt.Sprintf("%s[%d]", what, i))
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		p.errorf(n, "%s must be true or false, not %s", what, kindName(n))
	}
	return b
}

func (p *parser) integer(n *yaml.Node, what string) (int, bool) {
	var i int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		p.errorf(n, "%s must be a whole number, not %s", what, kindName(n))
		return 0, false
	}
	return i, true
}

// number reads a number, whole or not.
func (p *parser) number(n *yaml.Node, what string) (float64, bool) {
	var f float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
		p.errorf(n, "%s must be a number such as 1 or 0.5, not %s", what, kindName(n))
		return 0, false
	}
	return f, true
}

// duration reads a duration such as example ("5s"), and says what to
// write for a number without a unit.
func (p *parser) duration(n *yaml.Node, what, example string) (time.Duration, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.Atoi(s); nerr == nil {
			p.errorf(n, "%s %q needs a unit: write %ss", what, s, s)
		} else {
			p.errorf(n, "%s %q is not a duration such as %s", what, s, example)
		}
		return 0, false
	}
	return d, true
}

// check reports each problem of err, if any, at n's line, in the words of
// the check that failed (registry.Problem: "registry: bad name:" says
// nothing to someone editing a config; the field path and line say where).
func (p *parser) check(n *yaml.Node, what string, err error) {
	for _, e := range problems(err) {
		p.errorf(n, "%s: %s", what, registry.Problem(e))
	}
}

// mainFields is the schema of the main config file.
func (p *parser) mainFields(cfg *Config) []field {
	return []field{
		{"host", func(v *yaml.Node) { cfg.Host = p.checked(v, "host", isName("host")) }},
		{"etcd", func(v *yaml.Node) { p.parseEtcd(v, &cfg.Etcd) }},
		{"prefix", func(v *yaml.Node) { cfg.Prefix = p.checked(v, "prefix", checkPrefix) }},
		{"ttl", func(v *yaml.Node) { cfg.TTL = p.parseTTL(v) }},
		{"systemd", func(v *yaml.Node) { cfg.Systemd = p.checked(v, "systemd", checkSystemd) }},
		{"networks", func(v *yaml.Node) { cfg.Networks = p.parseNetworks(v) }},
		{"addrs", func(v *yaml.Node) { cfg.Addrs = p.parseAddrs(v) }},
		{"control", func(v *yaml.Node) { cfg.Control = p.checked(v, "control", checkControl) }},
		{"dns_ttl", func(v *yaml.Node) {
			if d, ok := p.duration(v, "dns_ttl", "5s"); ok {
				p.check(v, "dns_ttl", checkDNSTTL(d))
				cfg.DNSTTL, cfg.dnsTTLSet = d, true
			}
		}},
		{"check_concurrency", func(v *yaml.Node) {
			if n, ok := p.integer(v, "check_concurrency"); ok {
				p.check(v, "check_concurrency", checkConcurrency(n))
				cfg.CheckConcurrency = n
			}
		}},
		{"state_write_rate", func(v *yaml.Node) {
			if r, ok := p.number(v, "state_write_rate"); ok {
				p.check(v, "state_write_rate", checkStateWriteRate(r))
				cfg.StateWriteRate = r
			}
		}},
		{"state_write_burst", func(v *yaml.Node) {
			if n, ok := p.integer(v, "state_write_burst"); ok {
				p.check(v, "state_write_burst", checkStateWriteBurst(n))
				cfg.StateWriteBurst = n
			}
		}},
		{"services", func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "services must be a list of services (lines starting with '- name:'), not %s", kindName(v))
				return
			}
			cfg.Services = p.parseServices(v)
		}},
	}
}

func (p *parser) parseMain(file string, data []byte) *Config {
	p.file = file
	cfg := &Config{}
	if root := p.document(data); root != nil {
		p.fields(root, "config", p.mainFields(cfg))
	}
	return cfg
}

// etcdFields is the schema of etcd:. certNode is set to the first of cert,
// key and ca, where a missing partner is reported.
func (p *parser) etcdFields(e *EtcdConfig, certNode **yaml.Node) []field {
	file := func(name string, dst *string) field {
		return field{name, func(v *yaml.Node) {
			if s, ok := p.str(v, "etcd."+name); ok {
				*dst = s
				if *certNode == nil {
					*certNode = v
				}
			}
		}}
	}
	return []field{
		{"endpoints", func(v *yaml.Node) {
			eps, ok := p.strList(v, "etcd.endpoints")
			if !ok {
				return
			}
			if len(eps) == 0 {
				p.errorf(v, "etcd.endpoints is empty: list at least one URL, or drop it for %s", etcdconn.DefaultEndpoint)
			}
			for i, ep := range eps {
				p.check(v.Content[i], "etcd.endpoints", checkEndpoint(ep))
			}
			e.Endpoints = eps
		}},
		file("cert", &e.Cert),
		file("key", &e.Key),
		file("ca", &e.CA),
	}
}

func (p *parser) parseEtcd(v *yaml.Node, e *EtcdConfig) {
	var certNode *yaml.Node
	p.fields(v, "etcd", p.etcdFields(e, &certNode))
	if certNode != nil {
		p.check(certNode, "etcd", checkTLSFiles(*e))
	}
}

func (p *parser) parseTTL(v *yaml.Node) time.Duration {
	s, ok := p.str(v, "ttl")
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.Atoi(s); nerr == nil {
			p.errorf(v, "ttl %q needs a unit: write %ss", s, s)
		} else {
			p.errorf(v, "ttl %q is not a duration such as 10s", s)
		}
		return 0
	}
	p.check(v, "ttl", checkTTL(d))
	return d
}

func (p *parser) parseNetworks(v *yaml.Node) Networks {
	var out Networks
	p.entries(v, "networks", nil, func(name string, v *yaml.Node) {
		what := "networks." + name
		// Report the bad name at the key's line (one before its value, or the same).
		p.check(v, what, registry.CheckName("network", name))
		cidrs, ok := p.strList(v, what)
		if !ok {
			return
		}
		nw := Network{Name: name}
		for i, c := range cidrs {
			pfx, err := registry.ParseCIDR(c)
			if err != nil {
				p.check(v.Content[i], what, err)
				continue
			}
			nw.CIDRs = append(nw.CIDRs, pfx)
		}
		out = append(out, nw)
	})
	return out
}

func (p *parser) parseAddrs(v *yaml.Node) registry.Addrs {
	out := registry.Addrs{}
	p.entries(v, "addrs", nil, func(name string, v *yaml.Node) {
		what := "addrs." + name
		p.check(v, what, registry.CheckName("network", name))
		list, ok := p.strList(v, what)
		if !ok {
			return
		}
		for i, s := range list {
			a, err := registry.ParseAddr(s)
			if err != nil {
				p.check(v.Content[i], what, err)
				continue
			}
			out[name] = append(out[name], a)
		}
	})
	return out
}

func (p *parser) parseServices(list *yaml.Node) []Service {
	var out []Service
	for i, n := range list.Content {
		what := fmt.Sprintf("services[%d]", i)
		if !p.usable(n, what) {
			continue
		}
		if s, ok := p.parseService(n, what); ok {
			out = append(out, s)
		}
	}
	return out
}

// serviceRead is what parsing one service noted besides the Service: the
// lines of what is checked once every field is read.
type serviceRead struct {
	hasName bool
	hooks   [2]*yaml.Node // on_master, on_standby
}

// checkRead is what parsing one check noted besides the Spec: the kinds
// given (one is right) and each field's node, where its problems are
// reported.
type checkRead struct {
	kinds []healthcheck.Kind
	nodes map[string]*yaml.Node
}

// serviceFields is the schema of one service, at path what.
func (p *parser) serviceFields(s *Service, what string, r *serviceRead) []field {
	hook := func(name string, i int, dst *[]string) field {
		return field{name, func(v *yaml.Node) {
			argv, ok := p.strList(v, what+"."+name)
			if !ok {
				return
			}
			if len(argv) == 0 {
				p.errorf(v, "%s.%s: give the command as a list: [\"/path/to/cmd\", \"arg\"]", what, name)
			}
			*dst, r.hooks[i] = argv, v
		}}
	}
	return []field{
		{"name", func(v *yaml.Node) {
			if name, ok := p.str(v, what+".name"); ok {
				r.hasName = true
				p.check(v, what+".name", registry.CheckName("service", name))
				s.Name = name
			}
		}},
		{"unit", func(v *yaml.Node) { s.Unit = p.checked(v, what+".unit", checkUnit) }},
		{"ports", func(v *yaml.Node) { s.Ports = p.parsePorts(v, what+".ports") }},
		{"shard", func(v *yaml.Node) { s.Shard = p.checked(v, what+".shard", isName("shard")) }},
		{"master_election", func(v *yaml.Node) { s.MasterElection = p.boolean(v, what+".master_election") }},
		hook("on_master", 0, &s.OnMaster),
		hook("on_standby", 1, &s.OnStandby),
		{"min_active", func(v *yaml.Node) {
			if d, ok := p.duration(v, what+".min_active", "2s"); ok {
				p.check(v, what+".min_active", checkMinActive(d))
				s.MinActive = d
			}
		}},
		{"checks", func(v *yaml.Node) { s.Checks = p.parseChecks(v, what+".checks") }},
	}
}

// checkFields is the schema of one health check, at path what: exactly
// one of the kinds (its target), then the timing.
func (p *parser) checkFields(c *healthcheck.Spec, what string, r *checkRead) []field {
	kind := func(k healthcheck.Kind) field {
		return field{string(k), func(v *yaml.Node) {
			r.kinds, r.nodes[string(k)] = append(r.kinds, k), v
			c.Kind = k
			if k == healthcheck.KindExec {
				if v.Kind == yaml.ScalarNode {
					p.errorf(v, "%s.exec must be a list such as [\"/usr/local/bin/check-db\", \"--quick\"]: no shell splits a string into arguments", what)
					return
				}
				c.Argv, _ = p.strList(v, what+".exec")
				return
			}
			c.Target, _ = p.str(v, what+"."+string(k))
		}}
	}
	dur := func(name string, dst *time.Duration, example string) field {
		return field{name, func(v *yaml.Node) {
			r.nodes[name] = v
			d, ok := p.duration(v, what+"."+name, example)
			if ok && d <= 0 {
				p.errorf(v, "%s.%s %s must be positive: write a duration such as %s, or leave it out for the default", what, name, d, example)
				return
			}
			*dst = d
		}}
	}
	count := func(name string, dst *int, def int) field {
		return field{name, func(v *yaml.Node) {
			r.nodes[name] = v
			n, ok := p.integer(v, what+"."+name)
			if ok && n < 1 {
				p.errorf(v, "%s.%s %d must be at least 1: write a count such as %s: %d, or leave it out for the default", what, name, n, name, def)
				return
			}
			*dst = n
		}}
	}
	return []field{
		kind(healthcheck.KindHTTP),
		kind(healthcheck.KindTCP),
		kind(healthcheck.KindGRPC),
		kind(healthcheck.KindExec),
		dur("interval", &c.Interval, healthcheck.DefaultInterval.String()),
		dur("timeout", &c.Timeout, healthcheck.DefaultTimeout.String()),
		count("rise", &c.Rise, healthcheck.DefaultRise),
		count("fall", &c.Fall, healthcheck.DefaultFall),
	}
}

func (p *parser) parseChecks(v *yaml.Node, what string) Checks {
	if v.Kind != yaml.SequenceNode {
		p.errorf(v, "%s must be a list of checks, each starting with '- http:', '- tcp:', '- grpc:' or '- exec:', not %s", what, kindName(v))
		return nil
	}
	var out Checks
	for i, n := range v.Content {
		cw := fmt.Sprintf("%s[%d]", what, i)
		if !p.usable(n, cw) {
			continue
		}
		if c, ok := p.parseCheck(n, cw); ok {
			out = append(out, c)
		}
	}
	return out
}

// parseCheck reads one check, sets its defaults and checks it, each
// problem at the line of the field to fix.
func (p *parser) parseCheck(n *yaml.Node, what string) (healthcheck.Spec, bool) {
	c := healthcheck.Spec{Source: fmt.Sprintf("%s:%d", p.file, n.Line)}
	r := checkRead{nodes: map[string]*yaml.Node{}}
	before := len(p.errs)
	p.fields(n, what, p.checkFields(&c, what, &r))
	if n.Kind != yaml.MappingNode || len(p.errs) != before {
		return c, false
	}
	switch len(r.kinds) {
	case 0:
		p.errorf(n, "%s: no check kind: give one of http:, tcp:, grpc: or exec:, such as - http: http://127.0.0.1:8080/ready", what)
		return c, false
	case 1:
	default:
		p.errorf(r.nodes[string(r.kinds[1])], "%s: %s and %s in one check: a check has one kind; write each as its own list item (- %s: ...)", what, r.kinds[0], r.kinds[1], r.kinds[1])
		return c, false
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		at, field := n, string(c.Kind)
		var fe *healthcheck.FieldError
		if errors.As(err, &fe) {
			field = fe.Field
			if v := r.nodes[field]; v != nil {
				at = v
			} else if v := r.nodes[string(c.Kind)]; v != nil {
				at = v // a default that does not fit: the check's first line
			}
		}
		p.check(at, what+"."+field, err)
		return c, false
	}
	return c, true
}

func (p *parser) parseService(n *yaml.Node, what string) (Service, bool) {
	s := Service{Source: fmt.Sprintf("%s:%d", p.file, n.Line)}
	before := len(p.errs)
	var r serviceRead
	p.fields(n, what, p.serviceFields(&s, what, &r))
	if n.Kind == yaml.MappingNode && !r.hasName && len(p.errs) == before {
		p.errorf(n, "%s: name is missing: every service needs name: <dns-label>", what)
	}
	// Hooks are checked once master_election is known, wherever it is.
	for i, h := range r.hooks {
		if h != nil {
			argv := [][]string{s.OnMaster, s.OnStandby}[i]
			p.check(h, what+"."+[]string{"on_master", "on_standby"}[i], checkHook(argv, s.MasterElection))
		}
	}
	if s.Unit == "" && s.Name != "" {
		s.Unit = s.Name + ".service"
	}
	return s, len(p.errs) == before
}

// portFields is the schema of one port, at path what. portNode is set to
// the port number's node.
func (p *parser) portFields(port *registry.Port, what string, portNode **yaml.Node) []field {
	return []field{
		{"name", func(v *yaml.Node) { port.Name = p.checked(v, what+".name", isName("port")) }},
		{"port", func(v *yaml.Node) {
			*portNode = v
			if num, ok := p.integer(v, what+".port"); ok {
				p.check(v, what+".port", registry.CheckPortNumber(num))
				port.Port = num
			}
		}},
		{"proto", func(v *yaml.Node) { port.Proto = p.checked(v, what+".proto", registry.CheckProto) }},
	}
}

func (p *parser) parsePorts(v *yaml.Node, what string) []registry.Port {
	if v.Kind != yaml.SequenceNode {
		p.errorf(v, "%s must be a list such as [{name: http, port: 8080, proto: tcp}], not %s", what, kindName(v))
		return nil
	}
	var out []registry.Port
	seen := map[string]int{}
	for i, n := range v.Content {
		pw := fmt.Sprintf("%s[%d]", what, i)
		port := registry.Port{Proto: "tcp"}
		var portNode *yaml.Node
		p.fields(n, pw, p.portFields(&port, pw, &portNode))
		if n.Kind != yaml.MappingNode {
			continue
		}
		if port.Name == "" {
			p.errorf(n, "%s: name is missing: a port needs name: <dns-label> (its SRV name _<name>._<proto>)", pw)
		}
		if portNode == nil {
			p.errorf(n, "%s: port is missing: give its number, e.g. port: 8080", pw)
		}
		// registry.ValidatePorts refuses the same name and proto twice too
		// (Normalize); here the message can say where the first one is.
		k := port.Name + "/" + port.Proto
		if line, dup := seen[k]; dup && port.Name != "" {
			p.errorf(n, "%s: port %s is listed twice (first on line %d)", pw, k, line)
		}
		seen[k] = n.Line
		out = append(out, port)
	}
	return out
}

// parseServicesFile parses a services.d file: a YAML list of services, the
// same shape as the main file's services: list.
func (p *parser) parseServicesFile(file string, data []byte) []Service {
	p.file = file
	root := p.document(data)
	if root == nil {
		return nil
	}
	if !p.usable(root, "services file") {
		return nil
	}
	if root.Kind != yaml.SequenceNode {
		p.errorf(root, "a %s file is a YAML list of services (each starting with '- name:'), not %s", ServicesDir, kindName(root))
		return nil
	}
	return p.parseServices(root)
}

// checkUnique refuses a service name defined twice, also across files.
func (p *parser) checkUnique(svcs []Service) {
	first := map[string]string{}
	for _, s := range svcs {
		if s.Name == "" {
			continue
		}
		if where, dup := first[s.Name]; dup {
			file, line := splitSource(s.Source)
			p.errs = append(p.errs, &ConfigError{File: file, Line: line,
				Msg: fmt.Sprintf("service %q is defined twice (first at %s): rename or remove one", s.Name, where)})
			continue
		}
		first[s.Name] = s.Source
	}
}

func splitSource(src string) (string, int) {
	i := strings.LastIndexByte(src, ':')
	if i < 0 {
		return src, 0
	}
	line, _ := strconv.Atoi(src[i+1:])
	return src[:i], line
}
