//go:build !race

package gensort

const raceEnabled = false
