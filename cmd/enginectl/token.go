package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"engine/internal/pki"
	"engine/node"
)

// tokenFile is the global --token FILE.
var tokenFile string

// clientToken finds the client token: --token FILE, else $ENGINE_TOKEN,
// else the local data directory's token file ("" if there is none: the
// node then says what it wants).
func clientToken() (string, error) {
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if t := strings.TrimSpace(os.Getenv("ENGINE_TOKEN")); t != "" {
		return t, nil
	}
	if b, err := os.ReadFile(filepath.Join(defaultDataDir(), pki.TokenFile)); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// newClient is a client of the node at addr with the client token.
func newClient(addr string) (*node.Client, error) {
	tok, err := clientToken()
	if err != nil {
		return nil, err
	}
	c := node.NewClient(addr)
	c.Token = tok
	return c, nil
}
