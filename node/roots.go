package node

import (
	"fmt"
	"path/filepath"
	"strings"
)

// checkPath refuses a job path that is not absolute and clean, or (with
// --io-root) lies outside the configured roots. what names the path for
// the error ("--output", "map 3's input").
func (n *Node) checkPath(what, p string) error {
	if p == "" {
		return nil
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
		return fmt.Errorf("node: %s %q: give an absolute path without \"..\", \".\" or doubled slashes", what, p)
	}
	if len(n.cfg.IORoots) == 0 {
		return nil
	}
	// Symbolic links in the path count: the path must be under a root
	// once they are followed, as far as it exists.
	real := p
	if r, err := evalExisting(p); err == nil {
		real = r
	}
	for _, root := range n.cfg.IORoots {
		rr := root
		if r, err := filepath.EvalSymlinks(root); err == nil {
			rr = r
		}
		if within(rr, real) {
			return nil
		}
	}
	return fmt.Errorf("node: %s %q is outside the directories this node lets jobs use (--io-root %s)", what, p, strings.Join(n.cfg.IORoots, ", "))
}

// within reports whether p is root or beneath it.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// evalExisting resolves the symbolic links of the longest existing prefix
// of p and appends the rest.
func evalExisting(p string) (string, error) {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}
