package servicereg

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	healthcheck "github.com/rollcall/rollcall/internal/health"
	"github.com/rollcall/rollcall/registry"
)

// TestConfigSchemaOneSpelling holds the schema as read (the parser's field
// tables) to the schema as written (the yaml tags Config.YAML marshals), in
// the same order, so that a field added to one and not the other fails here
// rather than in a round trip nobody tried.
func TestConfigSchemaOneSpelling(t *testing.T) {
	p := &parser{}
	var node *yaml.Node
	for _, tc := range []struct {
		typ    reflect.Type
		fields []field
	}{
		{reflect.TypeFor[Config](), p.mainFields(&Config{})},
		{reflect.TypeFor[EtcdConfig](), p.etcdFields(&EtcdConfig{}, &node)},
		{reflect.TypeFor[Service](), p.serviceFields(&Service{}, "services[0]", &serviceRead{})},
		{reflect.TypeFor[registry.Port](), p.portFields(&registry.Port{}, "ports[0]", &node)},
	} {
		var read []string
		for _, f := range tc.fields {
			read = append(read, f.name)
		}
		if written := yamlKeys(tc.typ); !slices.Equal(read, written) {
			t.Errorf("%s: the parser reads %v, YAML writes %v", tc.typ, read, written)
		}
	}
}

// yamlKeys returns the keys yaml.v3 marshals a struct type's fields as.
func yamlKeys(typ reflect.Type) []string {
	var keys []string
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		keys = append(keys, name)
	}
	return keys
}

// TestConfigSchemaChecks holds the keys a health check is read with to the
// keys Checks.MarshalYAML writes: each kind's key, then the timing keys,
// in the order the parser lists them.
func TestConfigSchemaChecks(t *testing.T) {
	p := &parser{}
	var read []string
	for _, f := range p.checkFields(&healthcheck.Spec{}, "checks[0]", &checkRead{nodes: map[string]*yaml.Node{}}) {
		read = append(read, f.name)
	}
	kinds, timing := read[:len(healthcheck.Kinds)], read[len(healthcheck.Kinds):]
	for i, k := range healthcheck.Kinds {
		if kinds[i] != string(k) {
			t.Errorf("the parser reads kind keys %v, want %v", kinds, healthcheck.Kinds)
		}
		c := healthcheck.Spec{Kind: k, Target: "127.0.0.1:1", Argv: []string{"/bin/true"}}
		c.SetDefaults()
		out, err := yaml.Marshal(Checks{c})
		if err != nil {
			t.Fatal(err)
		}
		var items []yaml.Node
		if err := yaml.Unmarshal(out, &items); err != nil || len(items) != 1 {
			t.Fatalf("%s: %v\n%s", k, err, out)
		}
		var written []string
		for j := 0; j < len(items[0].Content); j += 2 {
			written = append(written, items[0].Content[j].Value)
		}
		if want := append([]string{string(k)}, timing...); !slices.Equal(written, want) {
			t.Errorf("%s: YAML writes %v, the parser reads %v", k, written, want)
		}
	}
}

// TestConfigYAMLRoundTrip: the effective config `servicereg -check`
// prints, checks and all, loads back to the same config.
func TestConfigYAMLRoundTrip(t *testing.T) {
	path := writeConfig(t, `
host: h1
dns_ttl: 0s
check_concurrency: 8
state_write_rate: 2.5
services:
  - name: web
    ports: [{name: http, port: 8080}]
    min_active: 1500ms
    checks:
      - http: https://[::1]:8443/ready?deep=1
        interval: 1m
        timeout: 2500ms
      - tcp: 127.0.0.1:8080
      - grpc: 127.0.0.1:9090/db.Store
        rise: 1
        fall: 1
      - exec: ["/usr/local/bin/check", "--name", "a b", "'quoted'", "x: y"]
        interval: 100ms
  - name: api
`, nil)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseConfig("effective.yml", out)
	if err != nil {
		t.Fatalf("the effective config does not load: %v\n%s", err, out)
	}
	if again.DNSTTL != 0 || again.CheckConcurrency != 8 || again.StateWriteRate != 2.5 || again.Control != DefaultControl {
		t.Errorf("top level after the round trip: %+v", again)
	}
	for i, s := range cfg.Services {
		a := again.Services[i]
		if a.Name != s.Name || a.MinActive != s.MinActive || len(a.Checks) != len(s.Checks) {
			t.Fatalf("service %d after the round trip: %+v, want %+v\n%s", i, a, s, out)
		}
		for j := range s.Checks {
			if !a.Checks[j].Equal(s.Checks[j]) {
				t.Errorf("%s check %d after the round trip: %+v, want %+v\n%s", s.Name, j, a.Checks[j], s.Checks[j], out)
			}
		}
	}
}
