// Package web tests the plugin's `http` option (plugin/rollcall/README.md,
// "HTTP") with the real clients it is for, run from Debian's packages
// against etcd and CoreDNS in this process:
//
//   - TestPrometheusDiscovery: Prometheus (package prometheus) with
//     http_sd_configs pointing at /v1/prometheus lists every registered
//     instance as a target with the __meta_rollcall_* labels, and follows
//     an etcd change within its refresh interval.
//   - TestStatusPageInChromium: the status page in headless Chromium
//     (package chromium, driven with github.com/chromedp/chromedp) loads
//     with no console error and nothing from another origin, shows the
//     services, instances and master, follows an etcd change without a
//     reload (and, in a tab with script off, by its refresh), and fits a
//     phone's width.
//     It writes screenshots to the test's artifact folder: `make test`
//     keeps them under test-output/_artifacts (go test -artifacts
//     -outputdir DIR does the same elsewhere).
//
// A test whose binary is missing skips, naming it and its package: `make
// test` installs both when it runs as root. Everything listens on
// loopback; the instances' addresses are loopback ones, so Prometheus's
// scrapes of them fail at once rather than leave the machine. The tests
// live in *_test.go files; this file only documents them.
package web
