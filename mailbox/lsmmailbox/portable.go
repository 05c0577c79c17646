package lsmmailbox

import (
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/mailbox"
)

// OpenStore opens (creating if needed) a mailbox store in dir, keeping
// message bodies in blobs, and returns it ready to use, as a
// [mailbox.Store] configured by opts.Store (set its Index to keep a search
// index current). Closing the Store closes the backend and its DB, not
// blobs or the index: close those after the Store.
//
// To keep mailbox, blobs and index in one directory with one call, see
// package [github.com/mailbricks/mailbricks/embedded].
func OpenStore(dir string, blobs *dedup.Store, opts *Options) (*mailbox.Store, error) {
	if blobs == nil {
		panic("lsmmailbox: OpenStore with a nil dedup.Store")
	}
	b, err := Open(dir, opts)
	if err != nil {
		return nil, err
	}
	var so *mailbox.Options
	if opts != nil {
		so = opts.Store
	}
	return mailbox.New(b, blobs, so), nil
}
