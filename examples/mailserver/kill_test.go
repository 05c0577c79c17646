package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unlimited lifts the per-IP SMTP limits: the load comes from one loopback
// address.
var unlimited = []string{"-max-conns-per-ip", "-1", "-conn-rate-per-ip", "-1", "-message-rate-per-ip", "-1"}

// TestKillLoop SIGKILLs the server repeatedly while smtp-source and a
// client that tags every message send mail in; after a restart every
// message that got a 250 is in its mailbox exactly once and searchable.
func TestKillLoop(t *testing.T) {
	requireBinary(t, "/usr/sbin/smtp-source")
	s := newServer(t, "", unlimited...)
	s.user("kill@example.test", "kill-password")
	s.user("bulk@example.test", "bulk-password")
	rounds := 4
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		rounds = 20
	}
	r := killLoop(t, s, nil, rounds)
	s.start()
	r.check(t, s)
	s.stop()
}

// ssSessions is smtp-source's number of concurrent sessions.
const ssSessions = 2

// killRun is what a kill loop acknowledged.
type killRun struct {
	rounds    int
	mu        sync.Mutex
	acked     map[string]bool // subjects of the tagged client's messages answered 250
	attempted int
	// ssCounted is the sum of smtp-source's -c counters. It counts a
	// message when DATA gets its 354, before the end-of-data reply, so a
	// message in flight at the kill may be counted without a 250: each of
	// the -s sessions can have one such message per round.
	ssCounted int
}

// killLoop runs rounds of: start victim, send with smtp-source (to bulk@)
// and a tagging client (to kill@) through via's SMTP port (the victim's if
// via is nil), SIGKILL the victim after a random 0.3-1.2 s.
func killLoop(t *testing.T, victim, via *server, rounds int) *killRun {
	if via == nil {
		via = victim
	}
	r := &killRun{rounds: rounds, acked: map[string]bool{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			subj := fmt.Sprintf("ktag%06d", n)
			msg := "From: tagger@example.org\r\nTo: kill@example.test\r\nSubject: " + subj + "\r\n\r\nbody of " + subj + "\r\n"
			err := sendPlain(via.smtp, "tagger@example.org", "kill@example.test", msg)
			r.mu.Lock()
			r.attempted++
			if err == nil {
				r.acked[subj] = true
			}
			r.mu.Unlock()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	for round := range rounds {
		victim.start()
		cmd := exec.Command("/usr/sbin/smtp-source", "-c", "-m", "100000", "-s", strconv.Itoa(ssSessions), "-f", "src@example.org", "-t", "bulk@example.test", via.smtp)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(300+mrand.IntN(900)) * time.Millisecond)
		victim.kill()
		if via != victim {
			// The load went through the survivor; stop it there.
			cmd.Process.Kill()
		}
		cmd.Wait()
		n := lastCounter(out.String())
		r.ssCounted += n
		t.Logf("round %d: smtp-source counted %d messages", round, n)
	}
	stop()
	wg.Wait()
	return r
}

// lastCounter returns the last number smtp-source -c printed ("1\r2\r…").
func lastCounter(out string) int {
	best := 0
	for _, f := range strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > best {
			best = n
		}
	}
	return best
}

// check waits for the queue to drain through api and verifies every
// acknowledged message: in its mailbox exactly once, and searchable.
func (r *killRun) check(t *testing.T, api *server) {
	kill := api.client("kill@example.test", "kill-password")
	bulk := api.client("bulk@example.test", "bulk-password")
	// Wait until both inboxes hold at least what was acknowledged and
	// stop changing (jobs accepted but unanswered may still arrive).
	var last [2]int64
	stable, logged := time.Time{}, time.Now()
	waitFor(t, 3*time.Minute, "the incoming queue to drain", func() bool {
		k, b := kill.folder(t, "INBOX").Total, bulk.folder(t, "INBOX").Total
		if time.Since(logged) > 10*time.Second {
			logged = time.Now()
			t.Logf("waiting: kill@ %d stored of %d acknowledged, bulk@ %d of %d", k, len(r.acked), b, r.ssCounted)
		}
		if [2]int64{k, b} != last {
			last, stable = [2]int64{k, b}, time.Now()
			return false
		}
		return k >= int64(len(r.acked)) && b >= int64(r.ssCounted-ssSessions*r.rounds) && time.Since(stable) > 5*time.Second
	})

	// The tagged messages: each acknowledged one exactly once, no
	// duplicate of any.
	count := map[string]int{}
	for _, m := range kill.all(t, "INBOX") {
		count[m.Subject]++
	}
	for subj, n := range count {
		assert.Equal(t, 1, n, "%s stored %d times", subj, n)
	}
	missing := 0
	for subj := range r.acked {
		if count[subj] != 1 {
			missing++
		}
	}
	assert.Zero(t, missing, "acknowledged messages missing")
	// Searchable: the index holds every message, and each acknowledged
	// one is found by its tag. A worker killed between its mailbox commit
	// and its index write leaves a message listed but not yet indexed;
	// its job, still unacknowledged, is leased again when the dead
	// worker's lease expires and its retry indexes the stored message
	// (mailbox.Store.Append's idempotent path). So the index may trail
	// the listing by up to one lease period: wait for it, bounded.
	waitFor(t, 3*time.Minute, "the index to catch up with the mailboxes", func() bool {
		return kill.search(t, "in:INBOX").Total == len(count) && bulk.search(t, "from:src@example.org").Total == len(bulk.all(t, "INBOX"))
	})
	assert.Equal(t, len(count), kill.search(t, "in:INBOX").Total, "search total")
	notFound := 0
	for subj := range r.acked {
		if kill.search(t, "subject:"+subj).Total != 1 {
			notFound++
		}
	}
	assert.Zero(t, notFound, "acknowledged messages not found by search")

	// smtp-source's messages: at least what it counted, none twice (its
	// Message-Ids are unique).
	seen := map[string]int{}
	all := bulk.all(t, "INBOX")
	for _, m := range all {
		seen[m.MessageID]++
	}
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	assert.Zero(t, dups, "smtp-source messages stored twice")
	assert.GreaterOrEqual(t, len(all), r.ssCounted-ssSessions*r.rounds, "smtp-source messages answered 250 but missing")
	assert.LessOrEqual(t, len(all), r.ssCounted, "more smtp-source messages stored than sent")
	assert.Equal(t, len(all), bulk.search(t, "from:src@example.org").Total, "smtp-source messages searchable")
	t.Logf("kill loop: %d SIGKILLs; tagged client: %d attempted, %d acknowledged, %d stored, all acknowledged present once and found by search; smtp-source: %d counted (at least %d acknowledged), %d stored, %d duplicates",
		r.rounds, r.attempted, len(r.acked), len(count), r.ssCounted, r.ssCounted-ssSessions*r.rounds, len(all), dups)
}
