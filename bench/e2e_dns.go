package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// The mailserver checks SPF, DKIM and DMARC on every message, so each one
// costs a few DNS queries; on a machine whose resolver is remote or slow
// the benchmark would measure that resolver (Go's resolver waits 5 s per
// lost query). stubDNS answers every query at once with NXDOMAIN on a
// loopback address, and the server runs in a private mount namespace
// (unshare -m, root only) whose /etc/resolv.conf points there: the checks
// still run, on answers as fast as a local caching resolver's.
type stubDNS struct {
	conn   *net.UDPConn
	resolv string
}

// startStubDNS listens on 127.53.x.y:53 and writes a resolv.conf naming it
// in dir.
func startStubDNS(dir string) (*stubDNS, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("not root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return nil, err
	}
	var conn *net.UDPConn
	var err error
	for range 10 {
		ip := net.IPv4(127, 53, byte(1+rand.IntN(250)), byte(1+rand.IntN(250)))
		if conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: 53}); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	d := &stubDNS{conn: conn, resolv: filepath.Join(dir, "resolv.conf")}
	ip := conn.LocalAddr().(*net.UDPAddr).IP
	if err := os.WriteFile(d.resolv, fmt.Appendf(nil, "nameserver %s\noptions timeout:1 attempts:1\n", ip), 0o644); err != nil {
		conn.Close()
		return nil, err
	}
	go d.serve()
	return d, nil
}

func (d *stubDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if resp := stubNXDomain(buf[:n]); resp != nil {
			d.conn.WriteToUDP(resp, from)
		}
	}
}

// stubNXDomain answers a query with its first question and NXDOMAIN.
func stubNXDomain(q []byte) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 || q[4] != 0 || q[5] < 1 {
		return nil
	}
	i := 12
	for i < len(q) && q[i] != 0 {
		if q[i]&0xc0 != 0 {
			return nil
		}
		i += int(q[i]) + 1
	}
	i += 1 + 4 // root label, QTYPE, QCLASS
	if i > len(q) {
		return nil
	}
	r := append([]byte(nil), q[:i]...)
	r[2] = 0x80 | q[2]&0x79 // QR, opcode, RD
	r[3] = 0x80 | 3         // RA, NXDOMAIN
	r[4], r[5] = 0, 1       // one question
	clear(r[6:12])          // no answers, authority or additional records
	return r
}

// wrap returns the command that runs name with args seeing the stub's
// resolv.conf.
func (d *stubDNS) wrap(name string, args ...string) *exec.Cmd {
	return exec.Command("unshare", append([]string{"-m", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, d.resolv, name}, args...)...)
}

func (d *stubDNS) close() { d.conn.Close() }
