package queue

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Check functions are the one rule the Queue and every backend apply;
// these cases pin their limits from both sides.

func TestCheckEnqueue(t *testing.T) {
	for name, o := range map[string]EnqueueOptions{
		"the zero options":          {},
		"a key of MaxKeyLen bytes":  {Key: strings.Repeat("k", MaxKeyLen)},
		"priority MaxPriority":      {Priority: MaxPriority},
		"priority -MaxPriority":     {Priority: -MaxPriority},
		"a positive MaxAttempts":    {MaxAttempts: 1},
		"a NotBefore in the future": {NotBefore: time.Now().Add(time.Hour)},
	} {
		assert.NoError(t, CheckEnqueue("t", o), "CheckEnqueue must accept %s", name)
	}
	for name, o := range map[string]EnqueueOptions{
		"a key over MaxKeyLen bytes":  {Key: strings.Repeat("k", MaxKeyLen+1)},
		"a negative MaxAttempts":      {MaxAttempts: -1},
		"priority above MaxPriority":  {Priority: MaxPriority + 1},
		"priority below -MaxPriority": {Priority: -MaxPriority - 1},
	} {
		assert.ErrorIs(t, CheckEnqueue("t", o), ErrInvalid, "CheckEnqueue must reject %s", name)
	}
	assert.ErrorIs(t, CheckEnqueue("a.b", EnqueueOptions{}), ErrInvalid, "CheckEnqueue must check the topic")
}

func TestCheckLease(t *testing.T) {
	require.NoError(t, CheckLease("t", 1, time.Nanosecond))
	require.NoError(t, CheckLease("t", MaxLeaseCount, time.Minute))
	for _, n := range []int{-1, 0, MaxLeaseCount + 1} {
		assert.ErrorIs(t, CheckLease("t", n, time.Minute), ErrInvalid, "CheckLease must reject a count of %d", n)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		assert.ErrorIs(t, CheckLease("t", 1, ttl), ErrInvalid, "CheckLease must reject a ttl of %v", ttl)
	}
	assert.ErrorIs(t, CheckLease("", 1, time.Minute), ErrInvalid, "CheckLease must check the topic")
}

func TestCheckJob(t *testing.T) {
	require.NoError(t, CheckJob(Job{ID: "1", Topic: "t"}))
	assert.ErrorIs(t, CheckJob(Job{Topic: "t"}), ErrInvalid, "CheckJob must reject a job without ID")
	assert.ErrorIs(t, CheckJob(Job{ID: "1", Topic: "t\x00"}), ErrInvalid, "CheckJob must check the topic")

	require.NoError(t, CheckExtend(Job{ID: "1", Topic: "t"}, time.Second))
	assert.ErrorIs(t, CheckExtend(Job{ID: "1", Topic: "t"}, 0), ErrInvalid, "CheckExtend must reject a zero ttl")
	assert.ErrorIs(t, CheckExtend(Job{Topic: "t"}, time.Second), ErrInvalid, "CheckExtend must check the job")
}
