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

func TestPodIPSetsTheListenAddress(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"POD_IP": "127.32.0.7", "PORT": "9000"}, nil, "127.32.0.7:9000"},
		{map[string]string{"POD_IP": "127.32.0.7", "KYB_LISTEN": ":8081"}, nil, "127.32.0.7:8081"},
		{map[string]string{"POD_IP": "127.32.0.7"}, nil, "127.32.0.7:8080"},
		{map[string]string{"POD_IP": "fd00::7", "PORT": "80"}, nil, "[fd00::7]:80"},
		{map[string]string{"POD_IP": "127.32.0.7"}, []string{"--listen", "127.0.0.1:0"}, "127.0.0.1:0"},
		{map[string]string{"PORT": "9000"}, nil, "127.0.0.1:8080"},
	} {
		cfg, err := parseConfig(tc.args, envOf(tc.env), io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.env, tc.args, err)
		}
		if cfg.Listen != tc.want {
			t.Errorf("%v %v: listen %q, want %q", tc.env, tc.args, cfg.Listen, tc.want)
		}
	}
}

func TestPodIPRejectsBadValues(t *testing.T) {
	for _, env := range []map[string]string{
		{"POD_IP": "pod-7"},
		{"POD_IP": "127.32.0.7", "PORT": "http"},
		{"POD_IP": "127.32.0.7", "PORT": "70000"},
	} {
		if _, err := parseConfig(nil, envOf(env), io.Discard); err == nil {
			t.Errorf("%v: want an error", env)
		}
	}
}
