//go:build !race

package pgmailbox_test

const raceEnabled = false
