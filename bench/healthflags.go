package main

import (
	"flag"
	"fmt"
	"time"

	healthcheck "github.com/rollcall/rollcall/internal/health"
)

// HealthConfig is the settings of the health part (health.go).
type HealthConfig struct {
	Checks        int           // cpu: HTTP checks of the measured agent
	CheckInterval time.Duration // cpu: their interval
	Window        time.Duration // cpu and flap: the measuring window
	FlapHosts     int           // flap: simulated hosts (agent processes) per run
	FlapInterval  time.Duration // flap: interval of the flapping checks
	Gones         int           // gone: check failures timed
	GoneInterval  time.Duration // gone: interval of the failing check
	GoneFall      int           // gone: its fall
}

// healthFlagSet is the flags of HealthConfig, before parsing.
type healthFlagSet struct {
	checks, flapHosts, gones, goneFall          *int
	checkInterval, window, flapEvery, goneEvery *time.Duration
}

// healthFlags defines the health part's flags on fs.
func healthFlags(fs *flag.FlagSet) *healthFlagSet {
	return &healthFlagSet{
		checks:        fs.Int("health-checks", 200, "health: HTTP checks of the agent whose CPU is measured"),
		checkInterval: fs.Duration("health-check-interval", time.Second, "health: interval of those checks"),
		window:        fs.Duration("health-window", 20*time.Second, "health: measuring window of the agent CPU and of the flapping writes"),
		flapHosts:     fs.Int("health-flap-hosts", 20, "health: agents (one per simulated host) with a flapping check"),
		flapEvery:     fs.Duration("health-flap-interval", 200*time.Millisecond, "health: interval of the flapping checks (rise 1, fall 1: every run changes the state)"),
		gones:         fs.Int("health-gones", 20, "health: check failures timed until the instance leaves DNS"),
		goneEvery:     fs.Duration("health-gone-interval", time.Second, "health: interval of the check that fails"),
		goneFall:      fs.Int("health-gone-fall", 3, "health: fall of the check that fails (failures in a row to critical)"),
	}
}

// quick sets the smoke-mode defaults of the flags not given (def).
func (f *healthFlagSet) quick(def func(name string, apply func())) {
	def("health-window", func() { *f.window = 3 * time.Second })
	def("health-flap-hosts", func() { *f.flapHosts = 3 })
	def("health-gones", func() { *f.gones = 3 })
}

// config checks the parsed flags and returns the settings.
func (f *healthFlagSet) config() (HealthConfig, error) {
	c := HealthConfig{
		Checks: *f.checks, CheckInterval: *f.checkInterval, Window: *f.window,
		FlapHosts: *f.flapHosts, FlapInterval: *f.flapEvery,
		Gones: *f.gones, GoneInterval: *f.goneEvery, GoneFall: *f.goneFall,
	}
	interval := func(name string, d time.Duration) error {
		if d < healthcheck.MinInterval || d > time.Minute {
			return fmt.Errorf("-%s %v must be from %v to 1m (the agent refuses shorter check intervals)", name, d, healthcheck.MinInterval)
		}
		return nil
	}
	switch {
	case c.Checks < 1 || c.Checks > 10000:
		return c, fmt.Errorf("-health-checks must be from 1 to 10000")
	case c.Window < time.Second:
		return c, fmt.Errorf("-health-window must be at least 1s")
	case c.FlapHosts < 1 || c.FlapHosts > 500:
		return c, fmt.Errorf("-health-flap-hosts must be from 1 to 500 (each is an agent process)")
	case c.Gones < 1:
		return c, fmt.Errorf("-health-gones must be at least 1")
	case c.GoneFall < 1 || c.GoneFall > healthcheck.MaxRiseFall:
		return c, fmt.Errorf("-health-gone-fall must be from 1 to %d", healthcheck.MaxRiseFall)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"health-check-interval", c.CheckInterval}, {"health-flap-interval", c.FlapInterval}, {"health-gone-interval", c.GoneInterval}} {
		if err := interval(d.name, d.d); err != nil {
			return c, err
		}
	}
	return c, nil
}
