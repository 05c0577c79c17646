package index

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
)

// refusingBackend fails the test on any call: the limits must refuse
// their input before a backend sees it.
type refusingBackend struct{ t *testing.T }

func (b refusingBackend) Index(context.Context, mailbricks.UserID, []*Document) error {
	b.t.Fatal("Index reached the backend")
	return nil
}

func (b refusingBackend) Delete(context.Context, mailbricks.UserID, []mailbricks.MessageID) error {
	b.t.Fatal("Delete reached the backend")
	return nil
}

func (b refusingBackend) Update(context.Context, mailbricks.UserID, mailbricks.MessageID, Values) error {
	b.t.Fatal("Update reached the backend")
	return nil
}

func (b refusingBackend) Search(context.Context, mailbricks.UserID, *Request) (*Results, error) {
	b.t.Fatal("Search reached the backend")
	return nil, nil
}

func (b refusingBackend) List(context.Context, mailbricks.UserID, func(mailbricks.MessageID, Values) error) error {
	b.t.Fatal("List reached the backend")
	return nil
}

func (b refusingBackend) DeleteUser(context.Context, mailbricks.UserID) error {
	b.t.Fatal("DeleteUser reached the backend")
	return nil
}

func (b refusingBackend) Close() error { return nil }

func TestQueryLimits(t *testing.T) {
	x := New(refusingBackend{t}, nil)
	ctx := context.Background()
	const user = mailbricks.UserID("alice@example.com")
	many := func(n int, q Query) []Query {
		out := make([]Query, n)
		for i := range out {
			out[i] = q
		}
		return out
	}
	deep := Text(FieldAny, "a")
	for range 10000 {
		deep = Not(deep)
	}
	cases := []struct {
		name string
		q    Query
		msg  string
	}{
		// The pgindex case of issue 16: 10,000 terms took 20–45 s.
		{"10,000 words", And(many(10000, Text(FieldAny, "word"))...), "more than 256 terms"},
		{"257 words", Or(many(MaxQueryTerms+1, Text(FieldBody, "word"))...), "more than 256 terms"},
		{"phrase of 300 words", Text(FieldAny, strings.Repeat("w ", 300)), "more than 256 terms"},
		{"300 filters", And(many(300, HasFlag(FlagSeen))...), "more than 256 terms"},
		{"300 empty ORs", And(many(300, Or())...), "more than 256 terms"},
		{"10,000 nested NOTs", deep, "nested deeper than 64"},
		{"long text", Text(FieldAny, strings.Repeat("x", MaxQueryLen+1)), "longer than 16384 bytes"},
		{"long header name", HeaderText(strings.Repeat("x", MaxQueryLen+1), ""), "longer than 16384 bytes"},
		{"long keywords", And(many(100, HasKeyword(strings.Repeat("k", 200)))...), "longer than 16384 bytes"},
		{"UID ranges", UIDIn(make([]UIDRange, MaxQueryUIDRanges+1)...), "UID ranges"},
	}
	for _, c := range cases {
		_, err := x.Search(ctx, user, c.q, nil)
		require.ErrorIs(t, err, ErrBadQuery, c.name)
		require.ErrorContains(t, err, c.msg, c.name)
	}
	_, err := x.SearchString(ctx, user, strings.Repeat("word ", 10000), nil)
	var pe *ParseError
	require.True(t, errors.As(err, &pe), "a 10,000-word query string is a *ParseError: %v", err)
	require.Equal(t, MaxQueryLen, pe.Pos)
	_, err = x.SearchString(ctx, user, strings.Repeat("w ", 1000), nil)
	require.True(t, errors.As(err, &pe), "a 1,000-word query string is a *ParseError: %v", err)
	require.Equal(t, 2*MaxQueryTerms, pe.Pos, "the error is at the first word over the limit")

	// At the limits, queries are valid.
	for _, q := range []Query{
		And(many(MaxQueryTerms, Text(FieldAny, "word"))...),
		Text(FieldAny, strings.Repeat("w ", MaxQueryTerms)),
		UIDIn(make([]UIDRange, MaxQueryUIDRanges)...),
	} {
		require.NoError(t, validate(q))
	}
	ok := Text(FieldAny, "a")
	for range MaxQueryDepth {
		ok = Not(ok)
	}
	require.NoError(t, validate(ok), "%d nested NOTs are allowed", MaxQueryDepth)
	require.ErrorIs(t, validate(Not(ok)), ErrBadQuery, "%d nested NOTs are not", MaxQueryDepth+1)
}

func TestDocumentLimits(t *testing.T) {
	x := New(refusingBackend{t}, nil)
	ctx := context.Background()
	const user = mailbricks.UserID("alice@example.com")
	id := mailbricks.NewMessageID()
	cases := []struct {
		name string
		doc  Document
	}{
		{"keywords", Document{ID: id, Values: Values{Keywords: make([]string, MaxKeywords+1)}}},
		{"headers", Document{ID: id, Headers: make([]Header, MaxDocumentHeaders+1)}},
		{"file names", Document{ID: id, Filenames: make([]string, MaxDocumentFilenames+1)}},
		{"addresses", Document{ID: id, To: make([]Address, MaxDocumentAddresses/2), Cc: make([]Address, MaxDocumentAddresses/2+1)}},
		{"zero ID", Document{}},
	}
	for _, c := range cases {
		err := x.Index(ctx, user, &c.doc)
		require.ErrorIs(t, err, ErrInvalidDocument, c.name)
	}
	err := x.Update(ctx, user, id, Values{Keywords: make([]string, MaxKeywords+1)})
	require.ErrorIs(t, err, ErrInvalidDocument, "Update with too many keywords")
	require.NoError(t, validateDocument(&Document{ID: id, Values: Values{Keywords: make([]string, MaxKeywords)}, To: make([]Address, MaxDocumentAddresses)}))
}
