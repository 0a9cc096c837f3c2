//go:build race

package gensort

// raceEnabled reports whether the race detector is on; it makes the
// generator and CRC code roughly 30 times slower.
const raceEnabled = true
