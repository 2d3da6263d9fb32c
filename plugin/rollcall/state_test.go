package rollcall

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/rollcall/rollcall/registry"
)

func TestStatePut(t *testing.T) {
	const (
		goodHost = `{"name":"h1","addrs":{"public":["192.0.2.1"]}}`
		goodInst = `{"service":"web","host":"h1"}`
	)
	type put struct{ key, value string }
	tests := []struct {
		name       string
		puts       []put
		wantReason string // reason of the last put's error, "" for none
		wantHost   bool
		wantInst   bool
	}{
		{name: "good records", puts: []put{{"/rollcall/hosts/h1/host", goodHost}, {"/rollcall/hosts/h1/services/web", goodInst}}, wantHost: true, wantInst: true},
		{name: "bad value replaces good host: removed", puts: []put{{"/rollcall/hosts/h1/host", goodHost}, {"/rollcall/hosts/h1/host", "garbage"}}, wantReason: reasonRecord},
		{name: "bad value replaces good instance: removed", puts: []put{{"/rollcall/hosts/h1/services/web", goodInst}, {"/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1","ports":[{"name":"x","port":0,"proto":"tcp"}]}`}}, wantReason: reasonRecord},
		{name: "mismatch", puts: []put{{"/rollcall/hosts/h1/services/web", `{"service":"db","host":"h1"}`}}, wantReason: reasonMismatch},
		{name: "too large", puts: []put{{"/rollcall/hosts/h1/host", string(make([]byte, registry.MaxValueSize+1))}}, wantReason: reasonTooLarge},
		{name: "unexpected depth", puts: []put{{"/rollcall/hosts/h1/services/web/x", goodInst}}, wantReason: reasonKey},
		{name: "bad name in key", puts: []put{{"/rollcall/hosts/-h/host", goodHost}}, wantReason: reasonKey},
		{name: "bad candidate", puts: []put{{"/rollcall/elections/web/1a", "no way"}}, wantReason: reasonCandidate},
		{name: "wrong types", puts: []put{{"/rollcall/hosts/h1/host", `{"name":1,"addrs":[]}`}}, wantReason: reasonRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newState(registry.MustKeys("/rollcall"))
			var err error
			for _, p := range tt.puts {
				err = st.put(p.key, []byte(p.value), 1, newChanges())
			}
			var de *decodeError
			switch {
			case tt.wantReason == "" && err != nil:
				t.Errorf("put: %v", err)
			case tt.wantReason != "" && (!errors.As(err, &de) || de.reason != tt.wantReason):
				t.Errorf("error %v, want reason %s", err, tt.wantReason)
			}
			if got := st.hosts["h1"] != nil; got != tt.wantHost {
				t.Errorf("host present %v, want %v", got, tt.wantHost)
			}
			if got := st.insts["web"]["h1"] != nil; got != tt.wantInst {
				t.Errorf("instance present %v, want %v", got, tt.wantInst)
			}
			if st.ninsts != len(st.insts["web"]) {
				t.Errorf("instance count %d, want %d", st.ninsts, len(st.insts["web"]))
			}
		})
	}
}

func TestLeader(t *testing.T) {
	type cand struct {
		lease string
		value string
		rev   int64
	}
	tests := []struct {
		name     string
		cands    []cand
		del      string
		wantHost string
		wantTerm int64
	}{
		{name: "none"},
		{name: "lowest create revision leads", cands: []cand{{"2", "h2", 9}, {"1", "h1", 7}}, wantHost: "h1", wantTerm: 7},
		{name: "leader resigns", cands: []cand{{"2", "h2", 9}, {"1", "h1", 7}}, del: "1", wantHost: "h2", wantTerm: 9},
		{name: "garbage leader: no master, not the next", cands: []cand{{"2", "h2", 9}, {"1", "BAD HOST", 7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newState(registry.MustKeys("/rollcall"))
			for _, c := range tt.cands {
				_ = st.put("/rollcall/elections/web/"+c.lease, []byte(c.value), c.rev, newChanges())
			}
			if tt.del != "" {
				st.del("/rollcall/elections/web/"+tt.del, newChanges())
			}
			host, term, ok := st.leader("web")
			if ok != (tt.wantHost != "") || host != tt.wantHost || term != tt.wantTerm {
				t.Errorf("leader = %q %d %v, want %q %d", host, term, ok, tt.wantHost, tt.wantTerm)
			}
		})
	}
}

func TestReady(t *testing.T) {
	st, _ := fixtureState(t)
	rc := &Rollcall{ix: newIndex(nil, "")}
	if rc.Ready() {
		t.Errorf("ready before the first list")
	}
	rc.ix.replace(st)
	if !rc.Ready() {
		t.Errorf("not ready after the first list")
	}
}

// TestIndexIncremental checks that an update rebuilds only the services an
// event touched: other services keep their very same answers.
func TestIndexIncremental(t *testing.T) {
	st, _ := fixtureState(t)
	ix := newIndex(testNets(), "")
	ix.replace(st)
	before := ix.services["db"]
	before2 := ix.services["web"].instance([]byte("h1"))
	ch := newChanges()
	if err := st.put("/rollcall/hosts/h3/services/web", []byte(`{"service":"web","host":"h3","shard":"s9"}`), 99, ch); err != nil {
		t.Fatal(err)
	}
	st.rev = 99
	ix.update(st, ch)
	if ix.services["db"] != before {
		t.Errorf("db was rebuilt by a change to web")
	}
	web := ix.services["web"]
	if web.shard([]byte("s9")) == nil {
		t.Errorf("web not rebuilt")
	}
	if web.instance([]byte("h1")) != before2 {
		t.Errorf("unchanged instance h1 of web was rebuilt")
	}
	// A host change rebuilds every service with an instance on that host.
	ch = newChanges()
	if err := st.put("/rollcall/hosts/h1/host", []byte(`{"name":"h1","addrs":{"public":["192.0.2.99"]}}`), 100, ch); err != nil {
		t.Fatal(err)
	}
	ix.update(st, ch)
	if _, ok := ch.services["lone"]; !ok {
		t.Errorf("host change did not touch lone: %v", ch.services)
	}
	got := ix.services["lone"].insts[0].pub[0].String()
	if want := "192.0.2.99"; got != want {
		t.Errorf("lone after host change: %s, want %s", got, want)
	}
}

// FuzzIndex feeds raw etcd keys and values to the state and index builder:
// whatever they hold, nothing panics, and every served address is valid.
func FuzzIndex(f *testing.F) {
	for _, kv := range FixtureKVs()[:30] {
		f.Add(kv.Key, []byte(kv.Value), false)
	}
	f.Add("/rollcall/hosts/h1/host", []byte(`{"name":"h1","addrs":{"vpn0":["::ffff:1.2.3.4"]}}`), false)
	f.Add("/rollcall/hosts/h1/services/web", []byte(`{"service":"web","host":"h1"}`), true)
	f.Fuzz(func(t *testing.T, key string, value []byte, del bool) {
		st := newState(registry.MustKeys("/rollcall"))
		ix := newIndex(testNets(), "h1")
		ch := newChanges()
		_ = st.put("/rollcall/hosts/h1/host", []byte(`{"name":"h1","addrs":{"public":["192.0.2.1"]}}`), 1, ch)
		_ = st.put("/rollcall/hosts/h1/services/web", []byte(`{"service":"web","host":"h1"}`), 2, ch)
		ix.replace(st)
		ch = newChanges()
		if del {
			st.del(key, ch)
		} else {
			_ = st.put(key, value, 3, ch)
		}
		ix.update(st, ch)
		for _, service := range ix.services {
			for _, inst := range service.insts {
				for _, ips := range append([][]netip.Addr{inst.pub}, inst.on...) {
					for _, ip := range ips {
						if !ip.IsValid() || ip.Is4In6() || ip.Zone() != "" {
							t.Fatalf("index serves %v for %s", ip, inst.host)
						}
					}
				}
			}
		}
		for svc, m := range st.insts {
			for h, in := range m {
				if in.Host != h || in.Service != svc || !registry.ValidName(h) {
					t.Fatalf("served instance %+v under %s/%s", in, svc, h)
				}
				for _, addrs := range in.Addrs {
					for _, a := range addrs {
						if !a.IsValid() || a.Zone() != "" || a == (netip.Addr{}) {
							t.Fatalf("served bad address %v", a)
						}
					}
				}
			}
		}
	})
}

// TestLocalView checks that `local HOST` follows HOST's record: the networks
// its addresses are listed under or fall in, updated when the record changes.
func TestLocalView(t *testing.T) {
	st, _ := fixtureState(t)
	ix := newIndex(testNets(), "h2")
	ix.replace(st)
	if got := ix.view(); got != 1 {
		t.Errorf("h2's view %b, want vpn0 only", got)
	}
	tests := []struct {
		name  string
		value string
		want  viewSet
	}{
		{name: "address inside vpn1's range, under another name", value: `{"name":"h2","addrs":{"public":["192.0.2.2"],"lan":["10.200.9.9"]}}`, want: 2},
		{name: "both networks", value: `{"name":"h2","addrs":{"vpn0":["10.100.0.2"],"vpn1":["10.200.0.2"]}}`, want: 3},
		{name: "public only", value: `{"name":"h2","addrs":{"public":["192.0.2.2"]}}`, want: 0},
		{name: "garbage: record gone, no view", value: `nope`, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := newChanges()
			_ = st.put("/rollcall/hosts/h2/host", []byte(tt.value), 1, ch)
			ix.update(st, ch)
			if got := ix.view(); got != tt.want {
				t.Errorf("view %b, want %b", got, tt.want)
			}
		})
	}
}

// TestStateNamesSwept checks that the state's one copy of each name
// (state.intern) does not outlive the records: hosts, services and port
// lists that come and go leave the table no larger than what is registered,
// twice over, and records share one copy of a name and of a port list.
func TestStateNamesSwept(t *testing.T) {
	st := newState(registry.MustKeys("/rollcall"))
	for i := range 20 * minSweep {
		ch := newChanges()
		host, svc := fmt.Sprintf("h%d", i), fmt.Sprintf("s%d", i)
		key := "/rollcall/hosts/" + host + "/services/" + svc
		value := fmt.Sprintf(`{"service":%q,"host":%q,"shard":"x","ports":[{"name":"p%d","port":80,"proto":"tcp"}]}`, svc, host, i)
		if err := st.put(key, []byte(value), int64(i+1), ch); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 { // keep every other one: h0, h2, ...
			st.del(key, ch)
		}
	}
	if st.ninsts != 10*minSweep {
		t.Fatalf("%d instances, want %d", st.ninsts, 10*minSweep)
	}
	// Each instance kept holds 3 names and a port list, shard and tcp are
	// shared: 4 per instance, twice that before a sweep.
	if n, most := len(st.names), 2*4*st.ninsts+minSweep; n > most {
		t.Errorf("%d names interned for %d instances, want at most %d", n, st.ninsts, most)
	}
	a, b := st.insts["s0"]["h0"], st.insts["s2"]["h2"]
	if unsafe.StringData(a.Shard) != unsafe.StringData(b.Shard) || unsafe.StringData(a.Ports[0].Proto) != unsafe.StringData(b.Ports[0].Proto) {
		t.Error("two instances' shard or protocol are separate copies")
	}
	ch := newChanges()
	for _, h := range []string{"h4", "h6"} {
		if err := st.put("/rollcall/hosts/"+h+"/services/web", []byte(`{"service":"web","host":"`+h+`","ports":[{"name":"http","port":80,"proto":"tcp"}]}`), 1, ch); err != nil {
			t.Fatal(err)
		}
	}
	if p, q := st.insts["web"]["h4"].Ports, st.insts["web"]["h6"].Ports; &p[0] != &q[0] || len(p) != 1 || p[0] != (registry.Port{Name: "http", Port: 80, Proto: "tcp"}) {
		t.Errorf("same ports in two instances: %v at %p and %v at %p, want one shared list", p, p, q, q)
	}
}
