package pgmailbox

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
)

// connPool is a small pool of connections that hands out transactions:
// every statement of the backend runs in one, so a connection is busy
// exactly from BeginTx to Commit or Rollback. It is safe for concurrent
// use.
type connPool struct {
	cfg  *pgx.ConnConfig
	sem  chan struct{} // one token per connection in use
	mu   sync.Mutex
	idle []*pgx.Conn
	done bool
}

func newConnPool(cfg *pgx.ConnConfig, max int) *connPool {
	return &connPool{cfg: cfg, sem: make(chan struct{}, max)}
}

var errPoolClosed = errors.New("pgmailbox: connection pool closed")

// BeginTx starts a transaction on an idle or new connection.
func (p *connPool) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	conn, err := p.get(ctx)
	if err != nil {
		<-p.sem
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		p.put(conn, true)
		return nil, err
	}
	return &pooledTx{Tx: tx, p: p, conn: conn}, nil
}

// run runs f on an idle or new connection outside an explicit
// transaction, for reads that are a single statement (PostgreSQL runs each
// statement on one snapshot): one round trip instead of three.
func (p *connPool) run(ctx context.Context, f func(*pgx.Conn) error) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	conn, err := p.get(ctx)
	if err != nil {
		<-p.sem
		return err
	}
	err = f(conn)
	// A statement that failed outside a transaction leaves the connection
	// usable; one that pgx had to abandon (a cancelled context) is closed,
	// and put drops closed connections.
	p.put(conn, false)
	return err
}

func (p *connPool) get(ctx context.Context) (*pgx.Conn, error) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return nil, errPoolClosed
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	return pgx.ConnectConfig(ctx, p.cfg.Copy())
}

// put returns conn to the pool, or closes it if it is broken or the pool
// is closed, and frees its token.
func (p *connPool) put(conn *pgx.Conn, broken bool) {
	defer func() { <-p.sem }()
	p.mu.Lock()
	if broken || p.done || conn.IsClosed() {
		p.mu.Unlock()
		conn.Close(context.Background())
		return
	}
	p.idle = append(p.idle, conn)
	p.mu.Unlock()
}

// close closes the idle connections; connections in use are closed when
// their transaction ends.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.done = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.Close(context.Background())
	}
}

// pooledTx returns its connection to the pool when it ends.
type pooledTx struct {
	pgx.Tx
	p        *connPool
	conn     *pgx.Conn
	released bool
}

func (t *pooledTx) release(err error) {
	if t.released {
		return
	}
	t.released = true
	t.p.put(t.conn, err != nil && !errors.Is(err, pgx.ErrTxClosed))
}

func (t *pooledTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.release(err)
	return err
}

func (t *pooledTx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	t.release(err)
	return err
}
