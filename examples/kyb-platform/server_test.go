package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestHealthContract(t *testing.T) {
	for _, tc := range []struct {
		unhealthy []string
		code      int
		status    string
	}{
		{nil, http.StatusOK, "healthy"},
		{[]string{"database"}, http.StatusServiceUnavailable, "unhealthy"},
		{[]string{"external_services"}, http.StatusServiceUnavailable, "unhealthy"},
	} {
		s := newServer(Config{Version: "v9", Unhealthy: tc.unhealthy})
		s.now = func() time.Time { return time.Date(2025, 8, 19, 2, 0, 0, 0, time.UTC) }
		rec := get(t, s.routes(), "/health")
		if rec.Code != tc.code || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%v: got %d %q", tc.unhealthy, rec.Code, rec.Header().Get("Content-Type"))
		}
		var body HealthStatus
		if err := json.NewDecoder(rec.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if body.Status != tc.status || body.Version != "v9" || body.Timestamp != "2025-08-19T02:00:00Z" {
			t.Fatalf("%v: unexpected body %+v", tc.unhealthy, body)
		}
		for _, dep := range dependencies {
			check, ok := body.Checks[dep]
			bad := len(tc.unhealthy) > 0 && tc.unhealthy[0] == dep
			switch {
			case !ok:
				t.Fatalf("check %s missing: %+v", dep, body.Checks)
			case bad && (check.Status != "unhealthy" || check.Message == ""):
				t.Fatalf("check %s should be unhealthy with a message: %+v", dep, check)
			case !bad && (check.Status != "healthy" || check.Message != ""):
				t.Fatalf("check %s should be healthy without a message: %+v", dep, check)
			}
		}
	}
}

func TestVerifyAnswersJSON(t *testing.T) {
	rec := get(t, newServer(Config{Version: "v1"}).routes(), "/api/v1/verify?business_id=acme")
	var body map[string]string
	if err := json.NewDecoder(rec.Body).Decode(&body); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("got %d, %v", rec.Code, err)
	}
	if body["business_id"] != "acme" || body["status"] != "verified" || body["version"] != "v1" {
		t.Fatalf("unexpected body %v", body)
	}
}

func TestErrorRateFailsTheRightFraction(t *testing.T) {
	s := newServer(Config{ErrorRate: 0.3})
	draws := []float64{0.1, 0.29, 0.3, 0.9}
	s.rand = func() float64 { d := draws[0]; draws = draws[1:]; return d }
	h := s.routes()
	var codes []int
	for range 4 {
		codes = append(codes, get(t, h, "/api/v1/verify").Code)
	}
	want := []int{500, 500, 200, 200}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v, want %v", codes, want)
		}
	}
	if code := get(t, h, "/health").Code; code != http.StatusOK {
		t.Fatalf("the error rate must not touch /health, got %d", code)
	}
}

func TestLatencyIsAdded(t *testing.T) {
	h := newServer(Config{Latency: 50 * time.Millisecond}).routes()
	start := time.Now()
	if code := get(t, h, "/api/v1/verify").Code; code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	if elapsed := time.Since(start); elapsed < 50*time.Millisecond {
		t.Fatalf("answered after %s, want at least 50ms", elapsed)
	}
}

func TestMetricsExposeTheAlertSeries(t *testing.T) {
	s := newServer(Config{ErrorRate: 1})
	h := s.routes()
	get(t, h, "/api/v1/verify")
	get(t, h, "/api/v1/verify")
	rec := get(t, h, "/metrics")
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`http_requests_total{method="GET",path="/api/v1/verify",status="500"} 2`,
		`http_requests_total{method="GET",path="/api/v1/verify",status="200"} 0`,
		`http_request_duration_seconds_bucket{method="GET",path="/api/v1/verify",status="500",le="0.5"} 2`,
		`http_request_duration_seconds_count{method="GET",path="/api/v1/verify",status="500"} 2`,
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, `path="/metrics"`) {
		t.Error("scrapes of /metrics must not be counted")
	}
}

func TestUnknownRouteIsNotFound(t *testing.T) {
	if code := get(t, newServer(Config{}).routes(), "/nope").Code; code != http.StatusNotFound {
		t.Fatalf("got %d", code)
	}
}
