//go:build race

package main

// raceEnabled reports that the tests run under the race detector, so the
// server binary they start is built with it too.
const raceEnabled = true
