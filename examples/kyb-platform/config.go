package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Dependencies the health check knows; a fault can report either one unhealthy.
var dependencies = []string{"database", "external_services"}

// Config is the service's settings. Every field has a flag and a KYB_* environment variable;
// a flag given on the command line wins over the variable.
type Config struct {
	Listen          string        // KYB_LISTEN, --listen; POD_IP (and PORT) when set, see podListen
	Version         string        // KYB_VERSION, --version
	ErrorRate       float64       // KYB_ERROR_RATE, --error-rate: fraction of business requests answering 500
	Latency         time.Duration // KYB_LATENCY_MS, --latency-ms: delay added to business requests
	Unhealthy       []string      // KYB_UNHEALTHY, --unhealthy: comma-separated dependencies reported unhealthy
	ShutdownTimeout time.Duration // KYB_SHUTDOWN_TIMEOUT, --shutdown-timeout: grace period after SIGTERM
}

// parseConfig reads args (without the program name) over the environment given by getenv.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	env := func(name, fallback string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return fallback
	}
	fs := flag.NewFlagSet("kyb-platform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", env("KYB_LISTEN", "127.0.0.1:8080"), "address to listen on (env KYB_LISTEN)")
	ver := fs.String("version", env("KYB_VERSION", version), "version reported by /health (env KYB_VERSION)")
	rate := fs.String("error-rate", env("KYB_ERROR_RATE", "0"), "fraction 0..1 of business requests answering 500 (env KYB_ERROR_RATE)")
	latency := fs.String("latency-ms", env("KYB_LATENCY_MS", "0"), "milliseconds added to business requests (env KYB_LATENCY_MS)")
	unhealthy := fs.String("unhealthy", env("KYB_UNHEALTHY", ""), "comma-separated dependencies reported unhealthy: database,external_services (env KYB_UNHEALTHY)")
	grace := fs.String("shutdown-timeout", env("KYB_SHUTDOWN_TIMEOUT", "10s"), "grace period for in-flight requests after SIGTERM (env KYB_SHUTDOWN_TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	cfg := Config{Listen: *listen, Version: *ver}
	var err error
	if !flagGiven(fs, "listen") && getenv("POD_IP") != "" {
		if cfg.Listen, err = podListen(getenv("POD_IP"), getenv("PORT"), *listen); err != nil {
			return Config{}, err
		}
	}
	if cfg.ErrorRate, err = strconv.ParseFloat(*rate, 64); err != nil || cfg.ErrorRate < 0 || cfg.ErrorRate > 1 {
		return Config{}, fmt.Errorf("error rate %q: want a number from 0 to 1", *rate)
	}
	ms, err := strconv.Atoi(*latency)
	if err != nil || ms < 0 {
		return Config{}, fmt.Errorf("latency %q: want a whole number of milliseconds >= 0", *latency)
	}
	cfg.Latency = time.Duration(ms) * time.Millisecond
	if cfg.ShutdownTimeout, err = time.ParseDuration(*grace); err != nil || cfg.ShutdownTimeout <= 0 {
		return Config{}, fmt.Errorf("shutdown timeout %q: want a positive duration such as 10s", *grace)
	}
	if cfg.Unhealthy, err = parseDependencies(*unhealthy); err != nil {
		return Config{}, err
	}
	if cfg.Listen == "" {
		return Config{}, errors.New("listen address is empty")
	}
	return cfg, nil
}

// flagGiven reports whether the flag was set on the command line (not just defaulted).
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// podListen is the pod contract: a runtime that gives the process its pod's address in POD_IP
// (a kubelet through the downward API, the local platform's pod runner) gets the service listening
// on that address only, at PORT, else at the port of KYB_LISTEN (fallback), else 8080.
func podListen(podIP, port, fallback string) (string, error) {
	if net.ParseIP(podIP) == nil {
		return "", fmt.Errorf("POD_IP %q is not an IP address", podIP)
	}
	if port == "" {
		port = "8080"
		if _, p, err := net.SplitHostPort(fallback); err == nil && p != "" {
			port = p
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("PORT %q: want a TCP port from 1 to 65535", port)
	}
	return net.JoinHostPort(podIP, port), nil
}

func parseDependencies(raw string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(raw, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(dependencies, name) {
			return nil, fmt.Errorf("unknown dependency %q: want one of %v", name, dependencies)
		}
		out = append(out, name)
	}
	return out, nil
}
