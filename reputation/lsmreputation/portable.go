package lsmreputation

import "github.com/mailbricks/mailbricks/reputation"

// OpenTracker opens (creating if needed) reputation state in dir and
// returns it ready to use, as a [reputation.Tracker] configured by
// opts.Tracker. Closing the Tracker closes the backend and its DB.
func OpenTracker(dir string, opts *Options) (*reputation.Tracker, error) {
	b, err := Open(dir, opts)
	if err != nil {
		return nil, err
	}
	var to *reputation.Options
	if opts != nil {
		to = opts.Tracker
	}
	t, err := reputation.New(b, to)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	return t, nil
}
