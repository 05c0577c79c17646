package lsmqueue

import "github.com/mailbricks/mailbricks/queue"

// OpenQueue opens (creating if needed) a queue in dir and returns it ready
// to use, as a [queue.Queue] configured by opts.Queue. Closing the Queue
// closes the backend and its DB.
func OpenQueue(dir string, opts *Options) (*queue.Queue, error) {
	b, err := Open(dir, opts)
	if err != nil {
		return nil, err
	}
	var qo *queue.Options
	if opts != nil {
		qo = opts.Queue
	}
	return queue.New(b, qo), nil
}
