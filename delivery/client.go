package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The outbound SMTP client.
//
// go-smtp v0.26's client cannot upgrade a connection with STARTTLS after
// reading the EHLO reply (it only offers NewClientStartTLS, which issues
// STARTTLS unconditionally), has no PIPELINING and no per-command
// timeouts. So the outbound side speaks SMTP through this small client of
// its own: greeting, EHLO (HELO when EHLO is refused), opportunistic
// STARTTLS on the same connection when offered (a failed handshake makes the
// next connection to that host plain, as Postfix's "may" level does),
// MAIL/RCPT/DATA pipelined when PIPELINING is offered (RFC 2920), RSET
// between transactions and QUIT, each step under its RFC 5321 section
// 4.5.3.2 timeout. Replies are read with net/textproto.

// Timeouts are the outbound SMTP client's time limits (RFC 5321 section
// 4.5.3.2). Every zero field means the default given.
type Timeouts struct {
	// Connect bounds the TCP connect. The default is 30 seconds.
	Connect time.Duration
	// Greeting bounds the wait for the 220 greeting, EHLO, STARTTLS and
	// the TLS handshake each. The default is 5 minutes.
	Greeting time.Duration
	// Mail bounds the reply to MAIL. The default is 5 minutes.
	Mail time.Duration
	// Rcpt bounds the reply to each RCPT. The default is 5 minutes.
	Rcpt time.Duration
	// DataInit bounds the 354 reply to DATA. The default is 2 minutes.
	DataInit time.Duration
	// DataBlock bounds each write of message data. The default is 3
	// minutes.
	DataBlock time.Duration
	// DataTerm bounds the reply after the final dot. The default is 10
	// minutes.
	DataTerm time.Duration
	// Idle is how long an unused connection is kept open for reuse.
	// The default is 30 seconds.
	Idle time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, 30*time.Second)
	def(&t.Greeting, 5*time.Minute)
	def(&t.Mail, 5*time.Minute)
	def(&t.Rcpt, 5*time.Minute)
	def(&t.DataInit, 2*time.Minute)
	def(&t.DataBlock, 3*time.Minute)
	def(&t.DataTerm, 10*time.Minute)
	def(&t.Idle, 30*time.Second)
	return t
}

// hostError is a failure that concerns the whole connection (connect,
// greeting, EHLO, MAIL, DATA, a dropped connection): the recipients may be
// tried at the next MX host.
type hostError struct {
	e       *Error
	tlsFail bool // the TLS handshake failed: retry in plain text
	// session means the host refused the session itself (greeting,
	// EHLO/HELO): even a 5xx sends the recipients to the next MX host.
	session bool
}

func (h *hostError) Error() string { return h.e.Error() }

// smtpConn is one client connection to an MX host. It is used by one
// goroutine at a time.
type smtpConn struct {
	conn    net.Conn
	r       *textproto.Reader
	w       *bufio.Writer
	host    string // MX host name
	addr    string // ip:port
	ext     map[string]string
	tls     bool
	used    time.Time
	dirty   bool // a transaction was begun and not ended
	timeout Timeouts
	// in and out are the DATA copy's buffers, kept for the connection's
	// next messages: the raw bytes read, and their normalised form.
	in, out []byte
}

// dialSMTP connects to addr (the MX host's ip:port) from localIP ("" for
// the system's choice), reads the greeting, says EHLO and upgrades to TLS
// when offered and tlsConf is not nil.
func dialSMTP(ctx context.Context, host, addr, localIP, helo string, tlsConf *tls.Config, to Timeouts) (*smtpConn, error) {
	d := net.Dialer{Timeout: to.Connect}
	if localIP != "" {
		ip := net.ParseIP(localIP)
		if ip == nil {
			return nil, fmt.Errorf("delivery: bad source IP %q", localIP)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &hostError{e: &Error{Code: 421, Enhanced: [3]int{4, 4, 1}, Host: host, Message: "connect to " + host + ": " + oneLine(err.Error())}}
	}
	c := &smtpConn{conn: conn, host: host, addr: addr, timeout: to}
	c.setup(conn)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.hello(helo, to.Greeting); err != nil {
		conn.Close()
		return nil, err
	}
	if _, ok := c.ext["STARTTLS"]; ok && tlsConf != nil {
		code, _, err := c.cmd(to.Greeting, "STARTTLS")
		if err != nil {
			conn.Close()
			return nil, err
		}
		// A server that offered STARTTLS and then refuses it keeps its
		// EHLO state: go on in plain text.
		if code == 220 {
			cfg := tlsConf.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = host
			}
			tc := tls.Client(conn, cfg)
			tc.SetDeadline(time.Now().Add(to.Greeting))
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, &hostError{e: &Error{Code: 421, Enhanced: [3]int{4, 7, 5}, Host: host, Message: "TLS handshake with " + host + ": " + oneLine(err.Error())}, tlsFail: true}
			}
			c.setup(tc)
			c.tls = true
			if err := c.ehlo(helo, to.Greeting); err != nil {
				tc.Close()
				return nil, err
			}
		}
	}
	c.used = time.Now()
	return c, nil
}

func (c *smtpConn) setup(conn net.Conn) {
	c.conn = conn
	c.r = textproto.NewReader(bufio.NewReader(conn))
	c.w = bufio.NewWriterSize(conn, 32<<10)
}

func (c *smtpConn) hello(helo string, d time.Duration) error {
	c.conn.SetReadDeadline(time.Now().Add(d))
	code, msg, err := c.readReply()
	if err != nil {
		return err
	}
	if code != 220 {
		return &hostError{e: replyError(c.host, code, msg), session: true}
	}
	return c.ehlo(helo, d)
}

func (c *smtpConn) ehlo(helo string, d time.Duration) error {
	code, msg, err := c.cmd(d, "EHLO "+helo)
	if err != nil {
		return err
	}
	c.ext = map[string]string{}
	if code == 250 {
		lines := strings.Split(msg, "\n")
		for _, l := range lines[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
			c.ext[strings.ToUpper(k)] = v
		}
		return nil
	}
	code, msg, err = c.cmd(d, "HELO "+helo)
	if err != nil {
		return err
	}
	if code != 250 {
		return &hostError{e: replyError(c.host, code, msg), session: true}
	}
	return nil
}

// readReply reads one reply; a connection failure is a hostError.
func (c *smtpConn) readReply() (int, string, error) {
	code, msg, err := c.r.ReadResponse(0)
	if err != nil {
		var te *textproto.Error
		if errors.As(err, &te) {
			return te.Code, te.Msg, nil
		}
		return 0, "", c.lost(err)
	}
	return code, msg, nil
}

func (c *smtpConn) lost(err error) error {
	return &hostError{e: &Error{Code: 421, Enhanced: [3]int{4, 4, 2}, Host: c.host, Message: "connection to " + c.host + " lost: " + oneLine(err.Error())}}
}

// cmd sends one command and reads its reply within d.
func (c *smtpConn) cmd(d time.Duration, line string) (int, string, error) {
	c.conn.SetDeadline(time.Now().Add(d))
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return 0, "", c.lost(err)
	}
	if err := c.w.Flush(); err != nil {
		return 0, "", c.lost(err)
	}
	return c.readReply()
}

// replyError turns a non-success reply into an *Error, taking the enhanced
// code from the text when present (RFC 2034) and else a generic X.0.0.
func replyError(host string, code int, msg string) *Error {
	msg = oneLine(msg)
	e := &Error{Code: code, Message: msg, Host: host}
	if code < 400 || code > 599 {
		e.Code = 451 // an unexpected reply is a protocol error: retry
		e.Enhanced = [3]int{4, 5, 0}
		e.Message = fmt.Sprintf("unexpected reply %d from %s: %s", code, host, msg)
		return e
	}
	if enh, rest, ok := parseEnhanced(msg); ok && enh[0] == code/100 {
		e.Enhanced, e.Message = enh, rest
	} else {
		e.Enhanced = [3]int{code / 100, 0, 0}
	}
	return e
}

// parseEnhanced parses "X.Y.Z text".
func parseEnhanced(s string) ([3]int, string, bool) {
	code, rest, _ := strings.Cut(s, " ")
	parts := strings.Split(code, ".")
	if len(parts) != 3 {
		return [3]int{}, s, false
	}
	var e [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 || len(p) > 3 {
			return [3]int{}, s, false
		}
		e[i] = n
	}
	if e[0] != 2 && e[0] != 4 && e[0] != 5 {
		return [3]int{}, s, false
	}
	return e, rest, true
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", " ")
}

// send runs one transaction: MAIL, RCPT for each recipient, DATA with the
// message from body (dot-stuffed; body must already have CRLF line
// endings). It returns the per-recipient outcome, or a *hostError when the
// transaction as a whole failed (the connection is then unusable when the
// cause was a lost connection). size is the SIZE estimate.
func (c *smtpConn) send(ctx context.Context, from string, rcpts []string, body io.Reader, size int64) ([]*Error, error) {
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.dirty = true
	to := c.timeout
	mail := "MAIL FROM:<" + from + ">"
	if _, ok := c.ext["SIZE"]; ok && size > 0 {
		mail += " SIZE=" + strconv.FormatInt(size, 10)
	}
	if _, ok := c.ext["SMTPUTF8"]; ok && !isASCII(from+strings.Join(rcpts, "")) {
		mail += " SMTPUTF8"
	}
	res := make([]*Error, len(rcpts))
	accepted := 0
	_, pipelining := c.ext["PIPELINING"]
	if pipelining {
		// RFC 2920: MAIL, every RCPT and DATA in one write, then the
		// replies in order.
		c.w.WriteString(mail + "\r\n")
		for _, r := range rcpts {
			c.w.WriteString("RCPT TO:<" + r + ">\r\n")
		}
		c.w.WriteString("DATA\r\n")
		c.conn.SetDeadline(time.Now().Add(to.Mail + to.Rcpt))
		if err := c.w.Flush(); err != nil {
			return nil, c.lost(err)
		}
		c.conn.SetReadDeadline(time.Now().Add(to.Mail))
		code, msg, err := c.readReply()
		if err != nil {
			return nil, err
		}
		mailErr := code/100 != 2
		for i := range rcpts {
			c.conn.SetReadDeadline(time.Now().Add(to.Rcpt))
			rc, rm, err := c.readReply()
			if err != nil {
				return nil, err
			}
			if rc/100 != 2 {
				res[i] = replyError(c.host, rc, rm)
			} else {
				accepted++
			}
		}
		c.conn.SetReadDeadline(time.Now().Add(to.DataInit))
		dc, dm, err := c.readReply()
		if err != nil {
			return nil, err
		}
		if mailErr {
			if dc == 354 {
				c.abortData()
			}
			return nil, &hostError{e: replyError(c.host, code, msg)}
		}
		if dc != 354 {
			if accepted == 0 {
				return res, nil
			}
			return nil, &hostError{e: replyError(c.host, dc, dm)}
		}
		if accepted == 0 {
			// The server started DATA although every RCPT failed: send
			// an empty message it cannot deliver to anyone.
			c.abortData()
			return res, nil
		}
	} else {
		code, msg, err := c.cmd(to.Mail, mail)
		if err != nil {
			return nil, err
		}
		if code/100 != 2 {
			return nil, &hostError{e: replyError(c.host, code, msg)}
		}
		for i, r := range rcpts {
			rc, rm, err := c.cmd(to.Rcpt, "RCPT TO:<"+r+">")
			if err != nil {
				return nil, err
			}
			if rc/100 != 2 {
				res[i] = replyError(c.host, rc, rm)
			} else {
				accepted++
			}
		}
		if accepted == 0 {
			return res, nil
		}
		dc, dm, err := c.cmd(to.DataInit, "DATA")
		if err != nil {
			return nil, err
		}
		if dc != 354 {
			return nil, &hostError{e: replyError(c.host, dc, dm)}
		}
	}
	dw := dataWriter{c: c, buf: c.out}
	_, err := dw.ReadFrom(body)
	c.out = dw.buf[:0]
	if err != nil {
		var he *hostError
		if errors.As(err, &he) {
			return nil, err
		}
		// The body could not be read: the transaction cannot end well.
		c.conn.Close()
		return nil, fmt.Errorf("delivery: read message: %w", err)
	}
	if err := dw.close(); err != nil {
		return nil, err
	}
	c.conn.SetReadDeadline(time.Now().Add(to.DataTerm))
	code, msg, err := c.readReply()
	if err != nil {
		return nil, err
	}
	c.dirty = false
	if code/100 != 2 {
		e := replyError(c.host, code, msg)
		for i := range res {
			if res[i] == nil {
				res[i] = e
			}
		}
	}
	return res, nil
}

// abortData ends a DATA the server accepted by mistake with an empty
// message and ignores the reply.
func (c *smtpConn) abortData() {
	c.cmd(c.timeout.DataTerm, ".")
}

// reset readies a used connection for the next transaction.
func (c *smtpConn) reset() bool {
	if !c.dirty {
		return true
	}
	code, _, err := c.cmd(c.timeout.Mail, "RSET")
	if err != nil || code != 250 {
		return false
	}
	c.dirty = false
	return true
}

func (c *smtpConn) quit() {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	c.w.WriteString("QUIT\r\n")
	if c.w.Flush() == nil {
		c.r.ReadResponse(0)
	}
	c.conn.Close()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// dataWriter writes message data: it dot-stuffs lines and turns every bare
// CR or LF into CRLF (RFC 5321 section 4.5.2 and 2.3.8), so the data on the
// wire never holds a bare line ending, and ends with CRLF "." CRLF.
type dataWriter struct {
	c   *smtpConn
	buf []byte
	st  normState
}

// normState is the line-ending normaliser's state, shared by the DKIM
// signer's copy and the wire copy so both see the same bytes.
type normState struct {
	bol   bool // at the beginning of a line (after CRLF, or at the start)
	cr    bool // the previous byte was a CR not yet written
	start bool // past the first byte
}

// normalize appends p to dst with bare CR and LF turned into CRLF; if
// stuff, a dot at the beginning of a line is doubled.
func (s *normState) normalize(dst, p []byte, stuff bool) []byte {
	if !s.start {
		s.start, s.bol = true, true
	}
	for len(p) > 0 {
		b := p[0]
		if s.cr {
			s.cr = false
			dst = append(dst, '\r', '\n')
			s.bol = true
			if b == '\n' {
				p = p[1:]
				continue
			}
		}
		switch b {
		case '\r':
			s.cr = true
			p = p[1:]
			continue
		case '\n':
			dst = append(dst, '\r', '\n')
			s.bol = true
			p = p[1:]
			continue
		}
		if s.bol && b == '.' && stuff {
			dst = append(dst, '.')
		}
		s.bol = false
		// Copy the rest of the line up to the next CR or LF at once.
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			i = len(p)
		}
		if k := bytes.IndexByte(p[:i], '\r'); k >= 0 {
			i = k
		}
		dst = append(dst, p[:i]...)
		p = p[i:]
	}
	return dst
}

// finish flushes a trailing CR and, if wantEOL, ends the last line.
func (s *normState) finish(dst []byte, wantEOL bool) []byte {
	if s.cr {
		s.cr = false
		dst = append(dst, '\r', '\n')
		s.bol = true
	}
	if wantEOL && s.start && !s.bol {
		dst = append(dst, '\r', '\n')
		s.bol = true
	}
	return dst
}

func (d *dataWriter) Write(p []byte) (int, error) {
	d.buf = d.st.normalize(d.buf[:0], p, true)
	d.c.conn.SetWriteDeadline(time.Now().Add(d.c.timeout.DataBlock))
	if _, err := d.c.w.Write(d.buf); err != nil {
		return 0, d.c.lost(err)
	}
	return len(p), nil
}

// ReadFrom copies r through Write with the connection's read buffer, so
// a message costs no buffer allocation.
func (d *dataWriter) ReadFrom(r io.Reader) (int64, error) {
	if d.c.in == nil {
		d.c.in = make([]byte, 32<<10)
	}
	var n int64
	for {
		k, err := r.Read(d.c.in)
		if k > 0 {
			if _, werr := d.Write(d.c.in[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (d *dataWriter) close() error {
	d.buf = d.st.finish(d.buf[:0], true)
	d.buf = append(d.buf, ".\r\n"...)
	d.c.conn.SetWriteDeadline(time.Now().Add(d.c.timeout.DataBlock))
	if _, err := d.c.w.Write(d.buf); err != nil {
		return d.c.lost(err)
	}
	if err := d.c.w.Flush(); err != nil {
		return d.c.lost(err)
	}
	return nil
}

// normReader is an io.Reader of r with bare CR and LF turned into CRLF
// and the last line ended; the DKIM signer reads it, so it signs what the
// dataWriter sends.
type normReader struct {
	r   io.Reader
	st  normState
	in  []byte
	out []byte
	eof bool
}

// newNormReader returns a normReader of r, whose size is about sizeHint
// bytes (it sizes the buffer).
func newNormReader(r io.Reader, sizeHint int64) *normReader {
	return &normReader{r: r, in: make([]byte, min(32<<10, max(4<<10, sizeHint+1)))}
}

func (n *normReader) Read(p []byte) (int, error) {
	for len(n.out) == 0 {
		if n.eof {
			return 0, io.EOF
		}
		k, err := n.r.Read(n.in)
		n.out = n.st.normalize(n.out[:0], n.in[:k], false)
		if err == io.EOF {
			n.eof = true
			n.out = n.st.finish(n.out, true)
		} else if err != nil {
			return 0, err
		}
	}
	k := copy(p, n.out)
	n.out = n.out[k:]
	return k, nil
}

// connPool keeps idle connections per (MX host address, source IP) for
// reuse and caps the connections open to one destination address.
type connPool struct {
	mu    sync.Mutex
	idle  map[string][]*smtpConn
	slots map[string]chan struct{}
	wake  map[string]chan struct{}
	max   int
	idleT time.Duration
}

func newConnPool(max int, idle time.Duration) *connPool {
	return &connPool{idle: map[string][]*smtpConn{}, slots: map[string]chan struct{}{}, wake: map[string]chan struct{}{}, max: max, idleT: idle}
}

func poolKey(addr, localIP string) string { return addr + "|" + localIP }

// slot returns the semaphore of destination addr.
func (p *connPool) slot(addr string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.slots[addr]
	if !ok {
		s = make(chan struct{}, p.max)
		p.slots[addr] = s
	}
	return s
}

// get returns an idle connection to addr from localIP, or nil after
// taking a connection slot for a new one (waiting while the destination is
// at its cap, until a connection is put back or closed). The caller dials
// and later calls put or drop.
func (p *connPool) get(ctx context.Context, addr, localIP string) (*smtpConn, error) {
	key := poolKey(addr, localIP)
	for {
		p.mu.Lock()
		list := p.idle[key]
		for len(list) > 0 {
			c := list[len(list)-1]
			list = list[:len(list)-1]
			p.idle[key] = list
			if time.Since(c.used) < p.idleT {
				p.mu.Unlock()
				return c, nil
			}
			p.mu.Unlock()
			c.quit()
			p.free(addr)
			p.mu.Lock()
			list = p.idle[key]
		}
		wake := p.wakeLocked(addr)
		p.mu.Unlock()
		s := p.slot(addr)
		select {
		case s <- struct{}{}:
			return nil, nil
		default:
		}
		// At the cap: an idle connection to addr from another source IP
		// gives its slot up.
		if p.closeIdle(addr) {
			continue
		}
		select {
		case s <- struct{}{}:
			return nil, nil
		case <-wake: // a connection was put back or closed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// wakeLocked returns the channel closed at the next put or free of a
// connection to addr. p.mu must be held.
func (p *connPool) wakeLocked(addr string) chan struct{} {
	w, ok := p.wake[addr]
	if !ok {
		w = make(chan struct{})
		p.wake[addr] = w
	}
	return w
}

// signal wakes the waiters for addr.
func (p *connPool) signal(addr string) {
	p.mu.Lock()
	if w, ok := p.wake[addr]; ok {
		close(w)
		delete(p.wake, addr)
	}
	p.mu.Unlock()
}

// free gives up a connection slot of addr.
func (p *connPool) free(addr string) {
	<-p.slot(addr)
	p.signal(addr)
}

// closeIdle closes one idle connection to addr, whatever its source IP,
// and reports whether there was one.
func (p *connPool) closeIdle(addr string) bool {
	p.mu.Lock()
	for key, list := range p.idle {
		if len(list) > 0 && list[0].addr == addr {
			c := list[0]
			p.idle[key] = list[1:]
			p.mu.Unlock()
			c.quit()
			p.free(addr)
			return true
		}
	}
	p.mu.Unlock()
	return false
}

// put returns a healthy connection for reuse.
func (p *connPool) put(c *smtpConn, localIP string) {
	if !c.reset() {
		p.drop(c)
		return
	}
	c.used = time.Now()
	p.mu.Lock()
	key := poolKey(c.addr, localIP)
	p.idle[key] = append(p.idle[key], c)
	p.mu.Unlock()
	p.signal(c.addr)
}

// drop closes a connection and frees its slot.
func (p *connPool) drop(c *smtpConn) {
	c.conn.Close()
	p.free(c.addr)
}

// release frees a slot taken by get for a dial that failed.
func (p *connPool) release(addr string) { p.free(addr) }

// close quits every idle connection.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string][]*smtpConn{}
	p.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.quit()
			p.free(c.addr)
		}
	}
}
