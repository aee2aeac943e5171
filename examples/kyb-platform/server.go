package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"
)

// CheckResult is one dependency's state in the health report.
type CheckResult struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// HealthStatus is the /health contract of the deployment guide.
type HealthStatus struct {
	Status    string                 `json:"status"`
	Timestamp string                 `json:"timestamp"`
	Version   string                 `json:"version"`
	Checks    map[string]CheckResult `json:"checks"`
}

// server answers the routes; its faults come from Config.
type server struct {
	cfg     Config
	metrics *metrics
	now     func() time.Time
	rand    func() float64 // in [0, 1); a request fails when it is below cfg.ErrorRate
}

func newServer(cfg Config) *server {
	return &server{cfg: cfg, metrics: newMetrics(), now: time.Now, rand: rand.Float64}
}

// routes returns the service's handler: health, metrics and the business API.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /health", s.metrics.instrument("/health", http.HandlerFunc(s.health)))
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.Handle("GET /api/v1/verify", s.metrics.instrument("/api/v1/verify", s.faulty(s.verify)))
	s.metrics.preset(http.MethodGet, "/api/v1/verify", http.StatusOK, http.StatusInternalServerError)
	s.metrics.preset(http.MethodGet, "/health", http.StatusOK, http.StatusServiceUnavailable)
	return mux
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	status := HealthStatus{
		Status:    "healthy",
		Timestamp: s.now().UTC().Format(time.RFC3339),
		Version:   s.cfg.Version,
		Checks:    make(map[string]CheckResult, len(dependencies)),
	}
	for _, dep := range dependencies {
		if err := s.check(dep); err != nil {
			status.Status = "unhealthy"
			status.Checks[dep] = CheckResult{Status: "unhealthy", Message: err.Error()}
		} else {
			status.Checks[dep] = CheckResult{Status: "healthy"}
		}
	}
	code := http.StatusOK
	if status.Status == "unhealthy" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, status)
}

// check stands in for pinging a dependency: it fails only when the fault says so.
func (s *server) check(dep string) error {
	if slices.Contains(s.cfg.Unhealthy, dep) {
		return fmt.Errorf("%s unreachable (fault injected)", dep)
	}
	return nil
}

// faulty applies the configured latency and error rate before calling next.
func (s *server) faulty(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Latency > 0 {
			t := time.NewTimer(s.cfg.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if s.cfg.ErrorRate > 0 && s.rand() < s.cfg.ErrorRate {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error (fault injected)"})
			return
		}
		next(w, r)
	})
}

// verify is the stand-in business call: it "verifies" the business named in the query.
func (s *server) verify(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("business_id")
	if id == "" {
		id = "demo-business"
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"business_id": id,
		"status":      "verified",
		"version":     s.cfg.Version,
	})
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body) // only fails when the client has gone away
}
