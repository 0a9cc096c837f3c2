package httpx

import "testing"

func TestCacheStatusString(t *testing.T) {
	tests := []struct {
		s    CacheStatus
		want string
	}{
		{CacheStatus{Cache: "engine-edge", Hit: true, TTL: 3600, HasTTL: true}, "engine-edge; hit; ttl=3600"},
		{CacheStatus{Cache: "engine-edge", Fwd: "miss", FwdStatus: 200, Stored: true, Collapsed: true},
			"engine-edge; fwd=miss; fwd-status=200; stored; collapsed"},
		{CacheStatus{Cache: "engine-edge", Fwd: "uri-miss", FwdStatus: 200, TTL: 60, HasTTL: true, Stored: true},
			"engine-edge; fwd=uri-miss; fwd-status=200; ttl=60; stored"},
		{CacheStatus{Cache: "engine-edge", Hit: true, TTL: -30, HasTTL: true}, "engine-edge; hit; ttl=-30"}, // stale
		{CacheStatus{Cache: "engine-edge", Hit: true, TTL: 0, HasTTL: true}, "engine-edge; hit; ttl=0"},     // zero is sent
		{CacheStatus{Cache: "engine-edge", Hit: true, TTL: 99}, "engine-edge; hit"},                         // no HasTTL
		{CacheStatus{Cache: "engine-edge", Fwd: "stale", FwdStatus: 304}, "engine-edge; fwd=stale; fwd-status=304"},
		{CacheStatus{Cache: "engine-edge", Fwd: "bypass"}, "engine-edge; fwd=bypass"},
		{CacheStatus{Cache: "engine-edge", Stored: true, Collapsed: true, FwdStatus: 200}, "engine-edge"}, // need fwd
		{CacheStatus{Cache: "engine-edge", Fwd: "not a token", Stored: true}, "engine-edge"},
		{CacheStatus{Cache: "engine-edge", Hit: true, Key: `GET https://ex.com/a"b\c`, Detail: "mem"},
			`engine-edge; hit; key="GET https://ex.com/a\"b\\c"; detail=mem`},
		{CacheStatus{Cache: "engine-edge", Fwd: "miss", Detail: "origin timeout"}, `engine-edge; fwd=miss; detail="origin timeout"`},
		{CacheStatus{Cache: "engine-edge", Hit: true, Key: "/caf\xc3\xa9\n"}, `engine-edge; hit; key="/caf%C3%A9%0A"`},
		{CacheStatus{Cache: "Edge Node 1", Hit: true}, `"Edge Node 1"; hit`},
		{CacheStatus{Cache: "1edge", Hit: true}, `"1edge"; hit`}, // sf-token must start with ALPHA or *
		{CacheStatus{Cache: "edge.example:8080/x", Hit: true}, `edge.example:8080/x; hit`},
		{CacheStatus{Hit: true}, `""; hit`},
		{CacheStatus{Cache: "c", Hit: true, TTL: 1 << 62, HasTTL: true}, "c; hit; ttl=999999999999999"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.s, got, tt.want)
		}
	}
}
