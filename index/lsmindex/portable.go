package lsmindex

import "github.com/mailbricks/mailbricks/index"

// OpenIndex opens (creating if needed) an index in dir and returns it ready
// to use, as an [index.Index] configured by opts.Index. Closing the Index
// closes the backend and its DB.
func OpenIndex(dir string, opts *Options) (*index.Index, error) {
	b, err := Open(dir, opts)
	if err != nil {
		return nil, err
	}
	var xo *index.Options
	if opts != nil {
		xo = opts.Index
	}
	return index.New(b, xo), nil
}
