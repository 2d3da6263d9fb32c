package rollcall

import (
	"testing"
	"time"

	"github.com/coredns/coredns/plugin"
)

// SetLoaderTiming shortens the timing of loaders started from now on, until
// the test and its cleanups (which stop those loaders) are done. retry
// bounds the back-off and the random delay before a re-list alike.
func SetLoaderTiming(t testing.TB, progress, stale, retry time.Duration) {
	p, s, r, j := progressEvery, staleAfter, retryMax, relistJitter
	progressEvery, staleAfter, retryMax, relistJitter = progress, stale, retry, retry
	t.Cleanup(func() { progressEvery, staleAfter, retryMax, relistJitter = p, s, r, j })
}

// Loaders returns how many loaders (etcd watches) the process runs.
func Loaders() int {
	loaders.Lock()
	defer loaders.Unlock()
	return len(loaders.m)
}

// FixtureHandler returns the handler of the fixture block for zone, filled
// with the fixture, as a query would find it.
func FixtureHandler(tb testing.TB, zone string) *Rollcall {
	hs, _ := fixtureHandlers(tb)
	return hs[zone]
}

// SetStartupWait changes how long OnStartup waits for the first list, for
// the rest of the test.
func SetStartupWait(t testing.TB, d time.Duration) {
	old := startupWait
	startupWait = d
	t.Cleanup(func() { startupWait = old })
}

// FixtureBlock returns the handler of a block for zones (space-separated)
// with the Corefile body, filled with the fixture: for tests that need
// options the fixture blocks lack, such as fallthrough.
func FixtureBlock(tb testing.TB, zones, body string) *Rollcall {
	st, _ := fixtureState(tb)
	return blockHandler(tb, zones, body, st)
}

// InBlock is a copy of h that knows the other handlers of its server
// block, as OnStartup learns them: which recorder is the log plugin's.
func InBlock(h *Rollcall, handlers ...plugin.Handler) *Rollcall {
	c := *h
	c.logs = logPluginsOf(handlers)
	return &c
}
