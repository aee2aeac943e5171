package main

import (
	"io"
	"slices"
	"testing"
	"time"
)

func envOf(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Version != version || cfg.ErrorRate != 0 ||
		cfg.Latency != 0 || len(cfg.Unhealthy) != 0 || cfg.ShutdownTimeout != 10*time.Second {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestParseConfigEnvironmentThenFlags(t *testing.T) {
	env := envOf(map[string]string{
		"KYB_LISTEN": "127.0.0.1:0", "KYB_VERSION": "v2.1.0", "KYB_ERROR_RATE": "0.25",
		"KYB_LATENCY_MS": "150", "KYB_UNHEALTHY": "database, external_services",
	})
	cfg, err := parseConfig(nil, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:0" || cfg.Version != "v2.1.0" || cfg.ErrorRate != 0.25 ||
		cfg.Latency != 150*time.Millisecond || !slices.Equal(cfg.Unhealthy, dependencies) {
		t.Fatalf("environment not applied: %+v", cfg)
	}

	cfg, err = parseConfig([]string{"--error-rate", "1", "--unhealthy", "", "--version=v2.2.0"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ErrorRate != 1 || len(cfg.Unhealthy) != 0 || cfg.Version != "v2.2.0" {
		t.Fatalf("flags must win over the environment: %+v", cfg)
	}
}

func TestParseConfigRejectsBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"--error-rate", "1.5"},
		{"--error-rate", "lots"},
		{"--latency-ms", "-1"},
		{"--unhealthy", "cache"},
		{"--shutdown-timeout", "0s"},
		{"--listen", ""},
		{"--no-such-flag"},
		{"stray"},
	} {
		if _, err := parseConfig(args, envOf(nil), io.Discard); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}
