package filededup

import "github.com/mailbricks/mailbricks/dedup"

// OpenStore opens (creating if needed) a blob store in dir and returns it
// ready to use, as a [dedup.Store] configured by opts.Store. Closing the
// Store closes the backend.
func OpenStore(dir string, opts *Options) (*dedup.Store, error) {
	b, err := Open(dir, opts)
	if err != nil {
		return nil, err
	}
	var so *dedup.Options
	if opts != nil {
		so = opts.Store
	}
	return dedup.New(b, so), nil
}
