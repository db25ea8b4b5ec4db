package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// echoHandler answers ping and status, panics on ban, fails on unban.
func echoHandler() Handler {
	return HandlerFunc(func(_ context.Context, req Request) (any, error) {
		switch req.Verb {
		case VerbPing:
			return PingReply{Version: "test", PID: 42}, nil
		case VerbStatus:
			return StatusReply{Backend: "fake", Jails: []JailStatus{{Name: "sshd", Banned: []string{"192.0.2.1"}}}}, nil
		case VerbBan:
			panic("boom")
		default:
			return nil, errors.New("no such thing")
		}
	})
}

// asTester lets the user running the tests through the peer check when
// that user is not root (the socket serves uid 0 only), so the tests run
// for a non-root developer too.
func asTester(opts Options) Options {
	if me := uint32(os.Geteuid()); me != 0 && opts.AllowUID == nil {
		opts.AllowUID = func(uid uint32) bool { return uid == me }
	}
	return opts
}

func startServer(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	return serveWith(t, opts, echoHandler())
}

// rawCall sends payload as is and returns the decoded reply.
func rawCall(t *testing.T, path string, payload []byte) Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		// Write errors are expected when the server gives up early.
		_, _ = c.Write(payload)
	}()
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		t.Fatalf("read: %v", err)
	}
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	_, path := startServer(t, Options{})
	c := NewClient(path)
	ctx := context.Background()
	p, err := c.Ping(ctx)
	if err != nil || p.PID != 42 || p.Version != "test" {
		t.Fatalf("Ping = %+v, %v", p, err)
	}
	st, err := c.Status(ctx, "sshd")
	if err != nil || len(st.Jails) != 1 || st.Jails[0].Banned[0] != "192.0.2.1" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	_, err = c.Unban(ctx, "sshd", "192.0.2.1")
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "no such thing" {
		t.Fatalf("Unban err = %v, want remote error", err)
	}
	// A panicking handler gives an error reply and the server keeps going.
	_, err = c.Ban(ctx, "sshd", "192.0.2.1", "")
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "internal error") {
		t.Fatalf("Ban err = %v, want internal error reply", err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping after panic: %v", err)
	}
}

func TestBadRequestsGetErrorReplies(t *testing.T) {
	_, path := startServer(t, Options{MaxRequest: 1024, ReadTimeout: 300 * time.Millisecond})
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"malformed", []byte("{not json\n"), "malformed JSON"},
		{"oversized", append([]byte(`{"verb":"ping","jail":"`), []byte(strings.Repeat("a", 4096)+"\"}\n")...), "larger than 1024"},
		{"oversized no newline", []byte(strings.Repeat("x", 2000)), "larger than 1024"},
		{"unknown verb", []byte(`{"verb":"shutdown"}` + "\n"), "unknown verb"},
		{"unknown field", []byte(`{"verb":"ping","cmd":"rm"}` + "\n"), "unknown field"},
		{"bad ip", []byte(`{"verb":"ban","jail":"sshd","ip":"1.2.3.4; rm -rf /"}` + "\n"), "invalid address"},
		{"bad jail", []byte(`{"verb":"ban","jail":"../x","ip":"192.0.2.1"}` + "\n"), "invalid jail"},
		{"two objects", []byte(`{"verb":"ping"}{"verb":"ping"}` + "\n"), "trailing data"},
		{"empty", []byte("\n"), "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawCall(t, path, tt.payload)
			if r.OK || !strings.Contains(r.Error, tt.want) {
				t.Fatalf("reply = %+v, want error containing %q", r, tt.want)
			}
		})
	}
	// A peer that never finishes its request times out with an error reply.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"verb":`)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	if !strings.Contains(string(b), "timed out") {
		t.Fatalf("slow peer reply = %q, want timeout error", b)
	}
	// After all of that the server still answers.
	if _, err := NewClient(path).Ping(context.Background()); err != nil {
		t.Fatalf("Ping after bad requests: %v", err)
	}
}

func TestSocketModes(t *testing.T) {
	srv, path := startServer(t, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want socket 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", di.Mode().Perm())
	}
	if srv.Path() != path {
		t.Errorf("Path = %q", srv.Path())
	}
}

func TestLiveSocketNotStolen(t *testing.T) {
	_, path := startServer(t, Options{})
	_, err := Listen(path, Options{})
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Listen err = %v, want ErrAlreadyRunning", err)
	}
	if _, err := NewClient(path).Ping(context.Background()); err != nil {
		t.Fatalf("first server lost its socket: %v", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "palisade.sock")
	// A socket file nobody listens on, as a crashed daemon leaves it.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if _, err := NewClient(path).Ping(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Ping on stale socket err = %v, want ErrNotRunning", err)
	}
	srv, err := Listen(path, asTester(Options{}))
	if err != nil {
		t.Fatalf("Listen over stale socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, echoHandler()) }()
	if _, err := NewClient(path).Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left after shutdown: %v", err)
	}
}

func TestNonSocketFileNotRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "palisade.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, Options{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen err = %v, want not a socket", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("file was clobbered")
	}
}

// dialAs connects to path from a thread whose real, effective and saved
// uids are uid, so the kernel records that uid as the peer credential.
// Only that OS thread changes identity; it exits with the goroutine.
func dialAs(path string, uid int) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: the thread is discarded.
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			ch <- result{err: e}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			unix.Close(fd)
			ch <- result{err: err}
			return
		}
		f := os.NewFile(uintptr(fd), "peer")
		c, err := net.FileConn(f)
		f.Close()
		ch <- result{c: c, err: err}
	}()
	r := <-ch
	return r.c, r.err
}

func TestNonRootPeerRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop privileges for the peer")
	}
	const nobody = 65534
	srv, path := startServer(t, Options{})
	// With the real modes, the file system already keeps nobody out.
	if c, err := dialAs(path, nobody); err == nil {
		c.Close()
		t.Fatal("nobody could connect through a 0700 directory")
	} else if !errors.Is(err, unix.EACCES) {
		t.Fatalf("connect as nobody: %v, want EACCES", err)
	}
	// Open the path up so the connection reaches the credential check.
	for d := filepath.Dir(srv.Path()); d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		if d == os.TempDir() {
			break
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	c, err := dialAs(path, nobody)
	if err != nil {
		t.Fatalf("connect as nobody with open modes: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// The server may answer and close before reading: a write error is fine.
	_, _ = c.Write([]byte(`{"verb":"status"}` + "\n"))
	b, _ := io.ReadAll(c)
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	if r.OK || !strings.Contains(r.Error, "permission denied") || len(r.Data) != 0 {
		t.Fatalf("reply to nobody = %+v, want permission denied", r)
	}
	// Root still gets served.
	if _, err := NewClient(path).Status(context.Background(), ""); err != nil {
		t.Fatalf("root after refused peer: %v", err)
	}
}

func TestAllowUIDInjectable(t *testing.T) {
	_, path := startServer(t, Options{AllowUID: func(uint32) bool { return false }})
	_, err := NewClient(path).Ping(context.Background())
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "permission denied") {
		t.Fatalf("err = %v, want permission denied", err)
	}
}

func TestClientNotRunning(t *testing.T) {
	_, err := NewClient(filepath.Join(t.TempDir(), "none.sock")).Ping(context.Background())
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("err = %v, want ErrNotRunning", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		req Request
		ok  bool
	}{
		{Request{Verb: VerbPing}, true},
		{Request{Verb: VerbPing, Jail: "sshd"}, false},
		{Request{Verb: VerbStatus}, true},
		{Request{Verb: VerbStatus, Jail: "sshd"}, true},
		{Request{Verb: VerbStatus, IP: "192.0.2.1"}, false},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "192.0.2.1"}, true},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "2001:db8::1", For: "1h"}, true},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "192.0.2.0/24"}, true},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "2001:db8::/64"}, true},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "0.0.0.0/0"}, false},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "127.0.0.1"}, false},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "::"}, false},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "ff02::1"}, false},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "255.255.255.255"}, false},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "192.0.2.1/33"}, false},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "fe80::1%eth0"}, false},
		{Request{Verb: VerbBan, IP: "192.0.2.1"}, false},
		{Request{Verb: VerbBan, Jail: "sshd"}, false},
		{Request{Verb: VerbUnban, Jail: "sshd", IP: "192.0.2.1"}, true},
		{Request{Verb: VerbUnban, All: true}, true},
		{Request{Verb: VerbUnban, All: true, Jail: "sshd"}, true},
		{Request{Verb: VerbUnban, All: true, IP: "192.0.2.1"}, false},
		{Request{Verb: VerbUnban, IP: "192.0.2.1"}, true},
		{Request{Verb: VerbUnban, Jail: "sshd", IP: "192.0.2.0/24"}, true},
		{Request{Verb: VerbUnban, Jail: "sshd", IP: "127.0.0.1"}, true},
		{Request{Verb: VerbExplain, IP: "192.0.2.0/24"}, false},
		{Request{Verb: VerbExplain, IP: "198.51.100.7"}, true},
		{Request{Verb: VerbExplain}, false},
		{Request{Verb: VerbReload}, true},
		{Request{Verb: VerbConfig}, true},
		{Request{Verb: VerbConfig, Jail: "sshd"}, false},
		{Request{Verb: "stop"}, false},
		{Request{Verb: VerbStatus, Jail: strings.Repeat("j", 65)}, false},
		{Request{Verb: VerbBan, Jail: "sshd", IP: "192.0.2.1", For: strings.Repeat("1", 65)}, false},
	}
	for _, tt := range tests {
		err := tt.req.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%+v: err = %v, want ok=%v", tt.req, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Errorf("%+v: err %v does not wrap ErrBadRequest", tt.req, err)
		}
	}
	if a := (Request{IP: "::ffff:192.0.2.1"}).Addr(); a.String() != "192.0.2.1" {
		t.Errorf("Addr unmapped = %v", a)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	seeds := []string{
		`{"verb":"ping"}`,
		`{"verb":"status","jail":"sshd"}`,
		`{"verb":"ban","jail":"sshd","ip":"192.0.2.1","for":"1h"}`,
		`{"verb":"unban","all":true}`,
		`{"verb":"explain","ip":"2001:db8::1"}`,
		`{"verb":"ban","jail":"sshd","ip":"::ffff:1.2.3.4"}`,
		`{"verb":"reload","x":1}`,
		`{"verb":"ban","jail":"a b","ip":"1"}`,
		`[]`, `null`, `{"verb":1}`, "\xff\xfe", `{"verb":"ping"} {}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		// Whatever decodes must validate again and carry a usable address
		// when it has one.
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded request fails validation: %v", err)
		}
		if r.IP != "" && !r.Addr().IsValid() {
			t.Fatalf("accepted unparsable address %q", r.IP)
		}
		if r.Jail != "" && !ValidJailName(r.Jail) {
			t.Fatalf("accepted jail name %q", r.Jail)
		}
	})
}
