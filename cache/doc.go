// Package cache is the edge cache: a CDN node in front of origins (the
// cluster's S3 endpoints), on fasthttp, with a memory and a disk tier
// (cache/tier), request coalescing, conditional, range and compressed
// responses (cache/httpx), origin failover, and a ring of edges that fill
// from each other.
//
//	srv, err := cache.New(cache.Config{Origins: []string{"http://127.0.0.1:9000"}, DiskDir: dir})
//	go srv.Serve(ln) // or ServeTLS
//	defer srv.Close()
//
// What it trusts: a request on the public listener is a client's, whatever
// its headers; the admin API wants the admin token. Peers reach the edge
// only on Config.PeerListener (connections the node authenticated with
// the cluster CA) and are dialed with Config.PeerTLS; without those, the
// edge sends nothing to peers. Memory per request is bounded: fills share
// Config.MaxFillBytes, multi-range bodies are streamed. The cache key keeps
// only the query parameters in Config.KeyParams (DefaultKeyParams).
package cache
