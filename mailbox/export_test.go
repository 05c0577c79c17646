package mailbox

import (
	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/internal/mailparse"
)

// IndexDocument is indexDocument over a fresh parse of raw with the
// default limits, which Store uses too.
func IndexDocument(id mailbricks.MessageID, raw []byte, v index.Values) *index.Document {
	return indexDocument(id, mailparse.Parse(raw, nil), v)
}
