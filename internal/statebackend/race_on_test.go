//go:build race

package statebackend

// raceEnabled shortens the slowest tests under the race detector.
const raceEnabled = true
