package registry

import (
	"testing"
)

// FuzzDecode feeds arbitrary keys and values to the readers' path: parse the
// key, decode the value by the key's kind. Nothing may panic, and whatever
// decodes must validate and re-encode to something that decodes the same way.
func FuzzDecode(f *testing.F) {
	f.Add("/rollcall/hosts/h1/host", []byte(`{"name":"h1","addrs":{"public":["192.0.2.10"],"vpn0":["10.0.0.1","::1"]}}`))
	f.Add("/rollcall/hosts/h1/services/web", []byte(`{"service":"web","host":"h1","shard":"s1","ports":[{"name":"http","port":8080,"proto":"tcp"}]}`))
	f.Add("/rollcall/elections/web/694d77c5d1e2a04", []byte("h1"))
	f.Add("/rollcall/hosts/h1/services/web", []byte(`{"service":"web","host":"h1","addrs":{"public":["fe80::1%eth0"]}}`))
	f.Add("/rollcall/hosts//host", []byte(`null`))
	f.Add("/rollcall/x", []byte(`{}`))
	k := MustKeys("/rollcall")
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		pk, err := k.Parse(key)
		if err != nil {
			return
		}
		switch pk.Kind {
		case KindHost:
			h, err := DecodeHost(pk, value)
			if err != nil {
				return
			}
			b, err := EncodeHost(h)
			if err != nil {
				t.Fatalf("decoded host does not re-encode: %v", err)
			}
			if _, err := DecodeHost(pk, b); err != nil {
				t.Fatalf("re-encoded host does not decode: %v", err)
			}
		case KindInstance:
			in, err := DecodeInstance(pk, value)
			if err != nil {
				return
			}
			b, err := EncodeInstance(in)
			if err != nil {
				t.Fatalf("decoded instance does not re-encode: %v", err)
			}
			if _, err := DecodeInstance(pk, b); err != nil {
				t.Fatalf("re-encoded instance does not decode: %v", err)
			}
		case KindElection:
			if h, err := DecodeCandidate(value); err == nil && !ValidName(h) {
				t.Fatalf("candidate %q decoded but is not a valid name", h)
			}
		}
	})
}
