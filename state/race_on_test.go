//go:build race

package state

// raceEnabled shortens the slowest tests under the race detector.
const raceEnabled = true
