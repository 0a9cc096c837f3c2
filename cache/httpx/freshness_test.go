package httpx

import (
	"math"
	"testing"
	"time"
)

func TestFreshnessLifetime(t *testing.T) {
	date := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	cc := ParseCacheControl
	none := time.Time{}
	tests := []struct {
		name          string
		cc            CacheControl
		expires, lm   time.Time
		hasExpires    bool
		date          time.Time
		status        int
		want          time.Duration
		wantHeuristic bool
	}{
		{"s-maxage beats max-age", cc("max-age=60, s-maxage=10"), none, none, false, date, 200, 10 * time.Second, false},
		{"s-maxage beats Expires", cc("s-maxage=10"), date.Add(time.Hour), none, true, date, 200, 10 * time.Second, false},
		{"s-maxage=0", cc("s-maxage=0, max-age=600"), none, none, false, date, 200, 0, false},
		{"max-age", cc("max-age=60"), none, none, false, date, 200, time.Minute, false},
		{"max-age beats Expires", cc("max-age=60"), date.Add(time.Hour), none, true, date, 200, time.Minute, false},
		{"max-age=0", cc("max-age=0"), date.Add(time.Hour), none, true, date, 200, 0, false},
		{"max-age any status", cc("max-age=60"), none, none, false, date, 599, time.Minute, false},
		{"huge max-age saturates", cc("max-age=99999999999999"), none, none, false, date, 200, MaxDeltaSeconds * time.Second, false},
		{"conflicting max-age is stale", cc("max-age=60, max-age=70"), none, lastMod, false, date, 200, 0, false},
		{"invalid max-age is stale", cc("max-age=soon"), date.Add(time.Hour), lastMod, true, date, 200, 0, false},
		{"Expires - Date", cc(), date.Add(time.Hour), none, true, date, 200, time.Hour, false},
		{"Expires in the past", cc(), date.Add(-time.Hour), none, true, date, 200, 0, false},
		{"Expires invalid (0)", cc(), none, lastMod, true, date, 200, 0, false},
		{"Expires without date", cc(), date.Add(time.Hour), none, true, none, 200, 0, false},
		{"Expires far future saturates", cc(), date.AddDate(200, 0, 0), none, true, date, 200, MaxDeltaSeconds * time.Second, false},
		{"Expires blocks heuristic", cc(), date.Add(-time.Second), lastMod, true, date, 200, 0, false},
		{"heuristic 10%", cc(), none, date.Add(-10 * time.Hour), false, date, 200, time.Hour, true},
		{"heuristic cap", cc(), none, lastMod, false, date, 404, MaxHeuristicLifetime, true},
		{"heuristic for public", cc("public"), none, date.Add(-10 * time.Hour), false, date, 302, time.Hour, true},
		{"no heuristic for 302", cc(), none, date.Add(-10 * time.Hour), false, date, 302, 0, false},
		{"no heuristic for 500", cc("no-cache"), none, date.Add(-10 * time.Hour), false, date, 500, 0, false},
		{"no Last-Modified", cc(), none, none, false, date, 200, 0, false},
		{"Last-Modified after Date", cc(), none, date.Add(time.Hour), false, date, 200, 0, false},
		{"stale extensions ignored", cc("stale-while-revalidate=60, stale-if-error=60"), none, none, false, date, 200, 0, false},
	}
	for _, tt := range tests {
		got, h := FreshnessLifetime(tt.cc, tt.date, tt.expires, tt.lm, tt.hasExpires, tt.status)
		if got != tt.want || h != tt.wantHeuristic {
			t.Errorf("%s: FreshnessLifetime = %v, %v; want %v, %v", tt.name, got, h, tt.want, tt.wantHeuristic)
		}
	}
}

func TestCurrentAge(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	tests := []struct {
		name           string
		date           time.Time
		age            int64
		req, resp, now time.Time
		want           time.Duration
	}{
		// Fresh from the origin: no Age, Date == response time.
		{"origin", s(0), -1, s(0), s(0), s(0), 0},
		{"resident time", s(0), -1, s(0), s(0), s(30), 30 * time.Second},
		// corrected_age_value = Age + response_delay = 100 + 2.
		{"age header", s(1), 100, s(0), s(2), s(12), 112 * time.Second},
		// apparent_age = 50 beats corrected_age_value = 10 + 1.
		{"apparent age wins", s(-49), 10, s(0), s(1), s(1), 50 * time.Second},
		// Date in the future (clock skew): apparent age 0.
		{"date in future", s(100), -1, s(0), s(1), s(1), time.Second},
		{"no Date", time.Time{}, 5, s(0), s(0), s(0), 5 * time.Second},
		{"response before request", s(0), 0, s(10), s(0), s(0), 0},
		{"now before response", s(0), 0, s(0), s(10), s(5), 10 * time.Second},
		{"huge Age saturates", s(0), math.MaxInt64, s(0), s(0), s(0), MaxDeltaSeconds * time.Second},
		{"no overflow", time.Unix(-1<<40, 0), math.MaxInt64, time.Unix(-1<<40, 0), time.Unix(1<<40, 0), time.Unix(1<<41, 0), math.MaxInt64},
	}
	for _, tt := range tests {
		if got := CurrentAge(tt.date, tt.age, tt.req, tt.resp, tt.now); got != tt.want {
			t.Errorf("%s: CurrentAge = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestStorable(t *testing.T) {
	cc := ParseCacheControl
	tests := []struct {
		name      string
		method    string
		status    int
		req, resp string
		auth, exp bool
		want      bool
	}{
		{"200 plain", "GET", 200, "", "", false, false, true},
		{"HEAD", "HEAD", 200, "", "", false, false, true},
		{"POST", "POST", 200, "", "max-age=60", false, false, false},
		{"lower-case get", "get", 200, "", "max-age=60", false, false, false},
		{"1xx", "GET", 103, "", "max-age=60", false, false, false},
		{"302 needs explicit", "GET", 302, "", "", false, false, false},
		{"302 max-age", "GET", 302, "", "max-age=60", false, false, true},
		{"302 Expires", "GET", 302, "", "", false, true, true},
		{"500 public", "GET", 500, "", "public", false, false, true},
		{"500 s-maxage", "GET", 500, "", "s-maxage=5", false, false, true},
		{"404 heuristic", "GET", 404, "", "", false, false, true},
		{"206 never", "GET", 206, "", "max-age=60", false, false, false},
		{"304 never", "GET", 304, "", "max-age=60", false, false, false},
		{"unknown status", "GET", 299, "", "max-age=60", false, false, true},
		{"response no-store", "GET", 200, "", "no-store, max-age=60", false, false, false},
		{"request no-store", "GET", 200, "no-store", "max-age=60", false, false, false},
		{"must-understand ignores no-store", "GET", 200, "", "must-understand, no-store, max-age=60", false, false, true},
		{"must-understand unknown status", "GET", 299, "", "must-understand, no-store, max-age=60", false, false, false},
		{"must-understand 206", "GET", 206, "", "must-understand, max-age=60", false, false, false},
		{"private", "GET", 200, "", "private, max-age=60", false, false, false},
		{"PRIVATE", "GET", 200, "", "PRIVATE", false, false, false},
		{"qualified private", "GET", 200, "", `private="Set-Cookie", max-age=60`, false, false, true},
		{"no-cache is storable", "GET", 200, "", "no-cache", false, false, true},
		{"request no-cache is storable", "GET", 200, "no-cache", "", false, false, true},
		{"auth plain", "GET", 200, "", "max-age=60", true, false, false},
		{"auth heuristic", "GET", 200, "", "", true, false, false},
		{"auth public", "GET", 200, "", "public", true, false, true},
		{"auth s-maxage", "GET", 200, "", "s-maxage=60", true, false, true},
		{"auth must-revalidate", "GET", 200, "", "must-revalidate", true, false, true},
		{"auth proxy-revalidate", "GET", 200, "", "proxy-revalidate, max-age=60", true, false, false},
		{"auth public private", "GET", 200, "", "public, private", true, false, false},
		{"auth must-revalidate 302 without explicit", "GET", 302, "", "must-revalidate", true, false, false},
	}
	for _, tt := range tests {
		got := Storable(tt.method, tt.status, cc(tt.req), cc(tt.resp), tt.auth, tt.exp)
		if got != tt.want {
			t.Errorf("%s: Storable = %v, want %v", tt.name, got, tt.want)
		}
	}
}
