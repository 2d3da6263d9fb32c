package servicereg

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

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
