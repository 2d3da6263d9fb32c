package web

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browser is a headless Chromium from Debian's package with one tab, and
// every console error the tab reported.
type browser struct {
	ctx context.Context

	mu     sync.Mutex
	errors []string
}

// startBrowser starts Chromium with a fresh profile and the flags that
// keep it off the network but for the page under test.
func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{ctx: ctx}
	// Subscribing starts the browser; messages are read as they come.
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
	})
	return b
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// within runs actions with a timeout, failing the test on an error.
func (b *browser) within(t *testing.T, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func run[T any](t *testing.T, b *browser, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// screenshot writes the page, whole, as a PNG in the test's artifact
// folder.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	png := run(t, b, chromedp.FullScreenshot(100))
	p := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// TestStatusPageInChromium loads the status page in headless Chromium: it
// shows the services, instances and master without a console error or a
// resource from elsewhere, follows etcd changes without reloading (with
// script off, by its refresh), and fits a phone's width.
func TestStatusPageInChromium(t *testing.T) {
	bin := need(t, "chromium", "chromium")
	s := startStack(t)
	s.putHost(t, "h1", "127.0.0.11")
	s.putHost(t, "h2", "127.0.0.12")
	s.putHost(t, "h3", "127.0.0.13")
	ports := `,"ports":[{"name":"http","port":8080,"proto":"tcp"}]`
	s.putInstance(t, "h1", "web", `,"shard":"s1"`+ports)
	s.putInstance(t, "h2", "web", `,"shard":"s2","state":"critical","reason":"check http: connection refused"`+ports)
	s.putInstance(t, "h3", "db", `,"state":"warning"`)
	term := s.elect(t, "web", 0x10, "h1")

	b := startBrowser(t, bin)
	b.within(t, time.Minute, "load the status page",
		chromedp.Navigate("http://"+s.httpAddr+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#svc-web`)),
	)
	// Just after start, on a loaded machine, the watch may still be behind
	// the list: the page follows it to watching.
	if !run(t, b, chromedp.Poll[bool](`document.getElementById("watch-state").textContent == "watching"`, chromedp.WithPollingTimeout(25*time.Second))) {
		t.Error("the page never showed the watch watching")
	}
	page := run(t, b, chromedp.Text(chromedp.CSS(`body`)))
	for _, want := range []string{"web", "db", "h1", "h2", "h3", "127.0.0.11", "http:8080/tcp", "critical", "check http: connection refused", "warning",
		fmt.Sprintf("master h1, term %d", term), "watching"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	b.screenshot(t, "status.png")

	// A mark in the page's JavaScript state survives only if the page is
	// not reloaded.
	run(t, b, chromedp.Evaluate[int](`window.rollcallMark = 42`))
	s.putHost(t, "h4", "127.0.0.14")
	s.putInstance(t, "h4", "web", ports)
	b.within(t, 30*time.Second, "the new instance h4 never appeared",
		chromedp.WaitVisible(chromedp.CSS(`#svc-web tr[data-host="h4"]`)))
	s.elect(t, "web", 0x5, "h2") // a later candidate: h1 stays master
	s.resign(t, "web", 0x10)
	if !run(t, b, chromedp.Poll[bool](`document.querySelector("#svc-web h3").textContent.includes("master h2")`, chromedp.WithPollingTimeout(25*time.Second))) {
		t.Error("the master change never appeared")
	}
	if mark := run(t, b, chromedp.Evaluate[int](`window.rollcallMark || 0`)); mark != 42 {
		t.Errorf("the page was reloaded (mark %d): it should follow changes in place", mark)
	}
	page = run(t, b, chromedp.Text(chromedp.CSS(`#changes`)))
	for _, want := range []string{"h4", "registered, passing", "became master, term"} {
		if !strings.Contains(page, want) {
			t.Errorf("recent changes lack %q:\n%s", want, page)
		}
	}
	b.screenshot(t, "status-after-changes.png")

	// No external assets: everything the page loaded, its style, script
	// and blocking queries included, came from the server itself.
	origin := "http://" + s.httpAddr + "/"
	urls := run(t, b, chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").map(e => e.name)`))
	if !slices.Contains(urls, origin+"static/status.css") || !slices.Contains(urls, origin+"static/status.js") {
		t.Errorf("the page's resources %v lack its style and script", urls)
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, origin) {
			t.Errorf("the page loaded %s, from elsewhere than %s", u, origin)
		}
	}

	t.Run("narrow screen", func(t *testing.T) {
		b.within(t, 30*time.Second, "emulate a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		overflow := run(t, b, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
		if overflow > 0 {
			t.Errorf("the page is %d px wider than a 390 px screen: it should scroll its tables, not itself", overflow)
		}
		b.screenshot(t, "status-narrow.png")
	})

	// Where script is off the page follows changes by refreshing itself:
	// the change must come with a navigation its meta refresh asked for.
	t.Run("without script", func(t *testing.T) {
		var refreshes atomic.Int32
		ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(func(ev any) { // a second tab
			if nav, ok := ev.(*cdppage.EventFrameRequestedNavigation); ok && nav.Reason == cdppage.ClientNavigationReasonMetaTagRefresh {
				refreshes.Add(1)
			}
		}))
		defer cancel()
		// The tab lives as long as the context of its first action: one
		// without a timeout.
		if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		})); err != nil {
			t.Fatalf("turn script off: %v", err)
		}
		nb := &browser{ctx: ctx}
		nb.within(t, time.Minute, "load the status page with script off",
			chromedp.Navigate(origin),
			chromedp.WaitVisible(chromedp.CSS(`#svc-web`)),
		)
		before := refreshes.Load()
		s.putHost(t, "h5", "127.0.0.15")
		s.putInstance(t, "h5", "web", ports)
		// The refresh comes every 10 seconds; slack for a shared machine.
		nb.within(t, 40*time.Second, "h5 never appeared on the page with script off",
			chromedp.WaitVisible(chromedp.CSS(`#svc-web tr[data-host="h5"]`)))
		if refreshes.Load() == before {
			t.Error("h5 appeared with no meta refresh since the change: was script off?")
		}
	})

	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
