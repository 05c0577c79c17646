package indextest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

// testHeaderNames checks that a plain word or prefix searches content, not
// header field names: a message is not found by "rep*" only because it
// has a Reply-To header, while HEADER searches still find it.
func testHeaderNames(t *testing.T, x *index.Index) {
	mk := func(d int, subject, body string, h []index.Header) *index.Document {
		return &index.Document{
			ID:      mailbricks.NewMessageIDAt(day(2024, 5, d)),
			From:    []index.Address{{Name: "Zed", Addr: "zed@example.net"}},
			Subject: subject,
			Body:    body,
			Headers: h,
			Values:  index.Values{Date: day(2024, 5, d), Folder: "INBOX"},
		}
	}
	docs := []*index.Document{
		mk(1, "Lunch", "see you at noon", []index.Header{{Name: "Reply-To", Value: "zed@example.net"}, {Name: "List-Id", Value: "Announce <announce.example.net>"}}),
		mk(2, "Weekly report", "numbers inside", nil),
	}
	require.NoError(t, x.IndexBatch(ctx, user, docs))
	expect(t, x, user, "rep*", docs, 1)
	expect(t, x, user, "reply*", docs)
	expect(t, x, user, "list*", docs)
	expect(t, x, user, `"reply-to"`, docs)
	expect(t, x, user, "announce", docs)
	res, err := x.Search(ctx, user, index.Prefix(index.FieldAny, "reply-to"), nil)
	require.NoError(t, err)
	require.Empty(t, res.Hits, "a plain prefix must not match a header field name")
	res, err = x.Search(ctx, user, index.HeaderText("Reply-To", ""), nil)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{docs[0].ID}, ids(res.Hits), `HEADER Reply-To "" must match messages with the header`)
	res, err = x.Search(ctx, user, index.HeaderText("Reply-To", "zed@example.net"), nil)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{docs[0].ID}, ids(res.Hits), "HEADER Reply-To with its value must match")
	res, err = x.Search(ctx, user, index.HeaderText("List-Id", "announce"), nil)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{docs[0].ID}, ids(res.Hits), "HEADER List-Id with a word of its value must match")
}

// testScripts checks that text in scripts with letters written as marks
// (Devanagari, Thai) and without spaces (Thai, Chinese) is found by a
// whole word and by a substring of a run.
func testScripts(t *testing.T, x *index.Index) {
	mk := func(d int, subject, body string) *index.Document {
		return &index.Document{
			ID:      mailbricks.NewMessageIDAt(day(2024, 6, d)),
			Subject: subject,
			Body:    body,
			Values:  index.Values{Date: day(2024, 6, d), Folder: "INBOX"},
		}
	}
	docs := []*index.Document{
		mk(1, "สวัสดีครับ", "ยินดีต้อนรับสู่ประเทศไทย"),
		mk(2, "नमस्ते दुनिया", "कुल राशि संलग्न है"),
		mk(3, "会议通知", "中华人民共和国的首都是北京"),
		mk(4, "ครบ", "कल मिलते हैं"),
	}
	require.NoError(t, x.IndexBatch(ctx, user, docs))
	// Thai: a whole run, a substring, and a word that differs only in a
	// vowel sign (the old folding dropped the sign and matched both).
	expect(t, x, user, "สวัสดีครับ", docs, 0)
	expect(t, x, user, "ครับ", docs, 0)
	expect(t, x, user, "ประเทศไทย", docs, 0)
	expect(t, x, user, "subject:ครบ", docs, 3)
	// Hindi: words keep their vowel signs.
	expect(t, x, user, "नमस्ते", docs, 1)
	expect(t, x, user, "कुल", docs, 1)
	expect(t, x, user, "कल", docs, 3)
	// Chinese: a word, a substring of a run and a phrase.
	expect(t, x, user, "北京", docs, 2)
	expect(t, x, user, "人民共和国", docs, 2)
	expect(t, x, user, `"会议 通知"`, docs)
	expect(t, x, user, "会议通知", docs, 2)
}
