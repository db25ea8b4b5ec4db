// Package notifytest holds test helpers for notification sinks: an
// in-process SMTP server (github.com/emersion/go-smtp) on loopback, with
// optional STARTTLS or implicit TLS and AUTH PLAIN, a TCP server that
// accepts connections and never answers (a hung mail server), and a
// self-signed certificate for 127.0.0.1. It is imported only by tests.
package notifytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Cert is a self-signed certificate for 127.0.0.1, ::1 and localhost.
type Cert struct {
	TLS tls.Certificate
	// CAFile is the certificate in PEM, for a client's ca_file.
	CAFile string
}

// NewCert makes a certificate valid for an hour, its PEM in t's temp dir.
func NewCert(t testing.TB) *Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "palisade test"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return &Cert{TLS: pair, CAFile: f}
}

// Mail is one message the server accepted.
type Mail struct {
	From string
	To   []string
	// Auth is the user that authenticated ("" without AUTH); TLS says
	// whether the session was encrypted.
	Auth string
	TLS  bool
	Data []byte
	// Msg is Data parsed; Body its decoded body.
	Msg  *mail.Message
	Body string
}

// SMTPOptions configure a test server.
type SMTPOptions struct {
	// Cert enables TLS: STARTTLS, or implicit TLS when Implicit is set.
	Cert     *Cert
	Implicit bool
	// User and Password, when set, are required (AUTH PLAIN, over TLS).
	User, Password string
}

// SMTPServer is an in-process SMTP server on 127.0.0.1.
type SMTPServer struct {
	// Addr is host:port.
	Addr string
	srv  *smtp.Server
	opts SMTPOptions
	mu   sync.Mutex
	mail []Mail
	note chan struct{}
}

// NewSMTPServer starts a server; it stops when the test ends.
func NewSMTPServer(t testing.TB, opts SMTPOptions) *SMTPServer {
	t.Helper()
	s := &SMTPServer{opts: opts, note: make(chan struct{}, 1)}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{s: s, tls: isTLS || opts.Implicit}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.srv.MaxMessageBytes = 1 << 20
	s.srv.ErrorLog = discardLog{}
	var l net.Listener
	var err error
	if opts.Cert != nil {
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{opts.Cert.TLS}}
	}
	if opts.Implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", s.srv.TLSConfig)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// Port is the server's port.
func (s *SMTPServer) Port() string {
	_, p, _ := net.SplitHostPort(s.Addr)
	return p
}

// Mails returns the messages accepted so far.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mail...)
}

// Wait waits (up to timeout) until at least n messages arrived and
// returns them all.
func (s *SMTPServer) Wait(t testing.TB, n int, timeout time.Duration) []Mail {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := s.Mails()
		if len(m) >= n {
			return m
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("got %d mails within %v, want %d", len(m), timeout, n)
		}
		select {
		case <-s.note:
		case <-time.After(min(left, 50*time.Millisecond)):
		}
	}
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

type session struct {
	s    *SMTPServer
	tls  bool
	auth string
	from string
	to   []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != ss.s.opts.User || pass != ss.s.opts.Password {
			return errors.New("invalid credentials")
		}
		ss.auth = user
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.User != "" && ss.auth == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Mail{From: ss.from, To: ss.to, Auth: ss.auth, TLS: ss.tls, Data: b}
	if msg, err := mail.ReadMessage(bytes.NewReader(b)); err == nil {
		m.Msg = msg
		body, _ := io.ReadAll(msg.Body)
		m.Body = decodeBody(msg.Header.Get("Content-Transfer-Encoding"), body)
	}
	ss.s.mu.Lock()
	ss.s.mail = append(ss.s.mail, m)
	ss.s.mu.Unlock()
	select {
	case ss.s.note <- struct{}{}:
	default:
	}
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// decodeBody undoes quoted-printable (go-mail's default for text).
func decodeBody(enc string, b []byte) string {
	if strings.EqualFold(enc, "quoted-printable") {
		out, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		return string(out)
	}
	return string(b)
}

// Hung is a TCP server that accepts connections and never says a word,
// as a mail server stuck in a bad state does.
type Hung struct {
	Addr  string
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	n     int
}

// NewHung starts one on 127.0.0.1; it stops when the test ends.
func NewHung(t testing.TB) *Hung {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &Hung{Addr: l.Addr().String(), l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.n++
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
	})
	return h
}

// Accepted is how many connections arrived.
func (h *Hung) Accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Port is the server's port.
func (h *Hung) Port() string {
	_, p, _ := net.SplitHostPort(h.Addr)
	return p
}
