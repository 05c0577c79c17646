package reputation_test

import (
	"testing"

	"github.com/mailbricks/mailbricks/reputation"
	"github.com/stretchr/testify/assert"
)

func TestClassify(t *testing.T) {
	type want struct {
		kind     reputation.Kind
		cat      reputation.Category
		suppress bool
	}
	H, S, D, OK := reputation.KindHardBounce, reputation.KindSoftBounce, reputation.KindDeferred, reputation.KindDelivered
	cases := []struct {
		code     int
		enhanced string
		text     string
		want     want
	}{
		{250, "2.0.0", "OK queued as 12345", want{OK, reputation.CategoryDelivered, false}},
		{550, "5.1.1", "user unknown", want{H, reputation.CategoryBadMailbox, true}},
		{550, "", "5.1.1 The email account that you tried to reach does not exist", want{H, reputation.CategoryBadMailbox, true}},
		{0, "", "550 5.1.1 <x@example.com>: Recipient address rejected: User unknown in virtual mailbox table", want{H, reputation.CategoryBadMailbox, true}},
		{550, "5.1.2", "Host unknown", want{H, reputation.CategoryBadDomain, true}},
		{553, "5.1.3", "bad address syntax", want{H, reputation.CategoryBadSyntax, true}},
		{550, "5.1.6", "mailbox has moved", want{H, reputation.CategoryBadMailbox, true}},
		{556, "5.1.10", "Recipient address has null MX", want{H, reputation.CategoryBadDomain, true}},
		{550, "5.2.1", "The email account that you tried to reach is disabled", want{H, reputation.CategoryMailboxDisabled, true}},
		{552, "5.2.2", "Mailbox full", want{S, reputation.CategoryMailboxFull, false}},
		{452, "4.2.2", "The email account that you tried to reach is over quota", want{S, reputation.CategoryMailboxFull, false}},
		{550, "5.0.0", "Requested action not taken: mailbox unavailable", want{H, reputation.CategoryBadMailbox, true}},
		{550, "5.7.1", "Service unavailable, Client host [192.0.2.1] blocked using Spamhaus", want{H, reputation.CategoryBlocked, false}},
		{554, "5.7.1", "Message rejected as spam", want{H, reputation.CategorySpam, false}},
		{550, "5.7.26", "Unauthenticated email from example.com is not accepted due to domain's DMARC policy", want{H, reputation.CategoryAuth, false}},
		{421, "4.7.0", "Too many connections from your IP, try again later", want{D, reputation.CategoryRateLimited, false}},
		{421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail", want{D, reputation.CategoryRateLimited, false}},
		{450, "4.7.1", "Recipient address rejected: Greylisted, see http://postgrey", want{D, reputation.CategoryGreylisted, false}},
		{451, "4.3.0", "Temporary local problem", want{D, reputation.CategoryTransient, false}},
		{421, "", "Service not available, closing transmission channel", want{D, reputation.CategoryTransient, false}},
		{552, "5.3.4", "Message size exceeds fixed limit", want{H, reputation.CategoryTooLarge, false}},
		{0, "", "user unknown", want{H, reputation.CategoryBadMailbox, true}},
		{0, "", "mailbox full", want{S, reputation.CategoryMailboxFull, false}},
		{0, "", "", want{D, reputation.CategoryOther, false}},
		{550, "4.1.1", "", want{H, reputation.CategoryBadMailbox, true}}, // the reply code decides the class
		{0, "9.9.9", "", want{D, reputation.CategoryOther, false}},
	}
	for _, c := range cases {
		got := reputation.Classify(c.code, c.enhanced, c.text)
		assert.Equal(t, c.want.kind, got.Kind, "%d %s %q: kind", c.code, c.enhanced, c.text)
		assert.Equal(t, c.want.cat, got.Category, "%d %s %q: category %v", c.code, c.enhanced, c.text, got.Category)
		assert.Equal(t, c.want.suppress, got.SuppressRecipient, "%d %s %q: suppress", c.code, c.enhanced, c.text)
	}
}

func FuzzClassify(f *testing.F) {
	f.Add(550, "5.1.1", "user unknown")
	f.Add(0, "", "421-4.7.0 try again later")
	f.Fuzz(func(t *testing.T, code int, enhanced, text string) {
		c := reputation.Classify(code, enhanced, text)
		if !c.Kind.Valid() {
			t.Fatalf("Classify(%d, %q, %q) kind %v is not valid", code, enhanced, text, c.Kind)
		}
		if c.SuppressRecipient && c.Kind != reputation.KindHardBounce {
			t.Fatalf("Classify(%d, %q, %q) suppresses on a %v", code, enhanced, text, c.Kind)
		}
	})
}
