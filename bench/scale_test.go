package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/mailbricks/mailbricks/internal/corpus"
)

// TestScaleCorpus checks that the scale suite's off-heap copy of the
// corpus holds the messages corpus.Load returns, in its order.
func TestScaleCorpus(t *testing.T) {
	want := corpus.ForTest(t)
	got, err := scaleCorpus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i, m := range want {
		if !bytes.Equal(m.Raw, got[i]) {
			t.Fatalf("message %d (%s/%s) differs", i, m.Group, m.Name)
		}
	}
}
