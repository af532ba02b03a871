//go:build !race

package statebackend

const raceEnabled = false
