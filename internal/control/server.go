package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Handler answers validated requests. The value it returns is encoded as
// the response's data; an error becomes an error response.
type Handler interface {
	Handle(ctx context.Context, req Request) (any, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req Request) (any, error)

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, req Request) (any, error) { return f(ctx, req) }

// ErrAlreadyRunning is returned by Listen when a live daemon answers on
// the socket path.
var ErrAlreadyRunning = errors.New("another daemon is already listening on the control socket")

// Options tune a Server. The zero value is the production setting.
type Options struct {
	// Logger receives refused connections and bad requests; nil discards.
	Logger *slog.Logger
	// MaxRequest bounds one request in bytes (default MaxRequestSize).
	MaxRequest int
	// ReadTimeout bounds the time a peer may take to send its request,
	// WriteTimeout the time to take the reply (defaults 5s each).
	ReadTimeout, WriteTimeout time.Duration
	// HandleTimeout bounds one request's handling (default 60s).
	HandleTimeout time.Duration
	// MaxConns bounds open connections (default 64). When every slot is
	// taken, the connection that has waited longest without sending its
	// request is closed to make room, so idle clients can never lock the
	// others out; when all are busy being answered, the newcomer gets a
	// "busy" error reply at once.
	MaxConns int
	// AllowUID decides which peer uids may talk; nil allows uid 0 only.
	// Tests may widen it; the daemon never does.
	AllowUID func(uid uint32) bool
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxRequest <= 0 {
		o.MaxRequest = MaxRequestSize
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.HandleTimeout <= 0 {
		o.HandleTimeout = 60 * time.Second
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 64
	}
	if o.AllowUID == nil {
		o.AllowUID = func(uid uint32) bool { return uid == 0 }
	}
}

// Server is a listening control socket.
type Server struct {
	path     string
	ln       *net.UnixListener
	opts     Options
	ino, dev uint64

	closeOnce sync.Once
	wg        sync.WaitGroup

	mu    sync.Mutex // guards conns, seq
	conns map[*connState]struct{}
	seq   uint64
}

// connState is one open connection; reading is set until its request has
// arrived (only such connections may be closed to admit another).
type connState struct {
	conn    *net.UnixConn
	seq     uint64
	reading bool
}

// Listen creates the control socket at path. The parent directory is
// created with mode 0700 when missing (systemd's RuntimeDirectory creates
// /run/palisade 0700); an existing directory is left as it is. The socket
// gets mode 0600 and every peer's uid is checked.
// A socket file left by a crashed daemon (nobody accepts on it) is removed
// and replaced; a live daemon's socket is left alone and ErrAlreadyRunning
// returned. A path that exists and is not a socket is an error.
func Listen(path string, opts Options) (*Server, error) {
	opts.defaults()
	if path == "" {
		return nil, errors.New("control socket: empty path")
	}
	dir := filepath.Dir(path)
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// We remove the file ourselves in Close, only if it is still ours.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	srv := &Server{path: path, ln: ln, opts: opts}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err == nil {
		srv.ino, srv.dev = st.Ino, uint64(st.Dev)
	}
	return srv, nil
}

func prepareDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("control socket directory: %w", err)
		}
		return os.Chmod(dir, 0o700)
	}
	if err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("control socket directory %s is not a directory", dir)
	}
	// An existing directory is not ours to change (it may be /tmp or a
	// project directory); the socket's own mode and the peer check keep
	// other users out.
	return nil
}

// clearStale removes a socket file nobody listens on.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: %w", path, ErrAlreadyRunning)
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("control socket %s: removing stale socket: %w", path, err)
		}
		return nil
	}
	return fmt.Errorf("control socket %s: probing existing socket: %w", path, err)
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until ctx is done or Close is called, and
// answers each with h in its own goroutine. It returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	var tempDelay time.Duration
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.wg.Wait()
				return nil
			}
			// Transient errors (EMFILE, ...): back off, bounded.
			if tempDelay == 0 {
				tempDelay = 5 * time.Millisecond
			} else if tempDelay < time.Second {
				tempDelay *= 2
			}
			s.opts.Logger.Warn("control socket accept", "err", err)
			select {
			case <-time.After(tempDelay):
			case <-ctx.Done():
			}
			continue
		}
		tempDelay = 0
		cs, ok := s.admit(conn)
		if !ok {
			s.opts.Logger.Warn("control socket: every connection is busy; refused one", "max", s.opts.MaxConns)
			_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			s.reply(conn, Response{Error: "daemon busy: too many control connections, try again"})
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.release(cs)
			s.serveConn(ctx, cs, h)
		}()
	}
}

// admit registers conn, closing the longest-waiting idle connection when
// every slot is taken; it refuses conn when none is idle.
func (s *Server) admit(conn *net.UnixConn) (*connState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[*connState]struct{}{}
	}
	if len(s.conns) >= s.opts.MaxConns {
		var victim *connState
		for c := range s.conns {
			if c.reading && (victim == nil || c.seq < victim.seq) {
				victim = c
			}
		}
		if victim == nil {
			return nil, false
		}
		delete(s.conns, victim)
		victim.conn.Close()
		s.opts.Logger.Debug("control socket: closed an idle connection to admit another")
	}
	s.seq++
	cs := &connState{conn: conn, seq: s.seq, reading: true}
	s.conns[cs] = struct{}{}
	return cs, true
}

// release forgets a finished connection.
func (s *Server) release(cs *connState) {
	s.mu.Lock()
	delete(s.conns, cs)
	s.mu.Unlock()
}

// accepted returns the number of connections admitted so far (tests).
func (s *Server) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.seq)
}

// open returns the number of open connections (tests).
func (s *Server) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops listening and removes the socket file. Connections in
// progress finish.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		// Remove the file only while it is still the one we created, so a
		// daemon that replaced it keeps its socket.
		var st unix.Stat_t
		if unix.Lstat(s.path, &st) == nil && st.Ino == s.ino && st.Dev == s.dev {
			os.Remove(s.path)
		}
		err = s.ln.Close()
	})
	return err
}

func peerUID(conn *net.UnixConn) (uint32, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return cred.Uid, nil
}

func (s *Server) serveConn(ctx context.Context, cs *connState, h Handler) {
	conn := cs.conn
	defer conn.Close()
	log := s.opts.Logger
	uid, err := peerUID(conn)
	if err != nil {
		log.Warn("control socket: cannot read peer credentials", "err", err)
		s.reply(conn, Response{Error: "permission denied"})
		return
	}
	if !s.opts.AllowUID(uid) {
		log.Warn("control socket: refused peer", "uid", uid)
		s.reply(conn, Response{Error: "permission denied: the control socket is for root only"})
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
	line, err := readLine(conn, s.opts.MaxRequest)
	s.mu.Lock()
	cs.reading = false
	s.mu.Unlock()
	if err != nil {
		log.Warn("control socket: bad request", "uid", uid, "err", err)
		s.reply(conn, Response{Error: err.Error()})
		return
	}
	req, err := DecodeRequest(line)
	if err != nil {
		log.Warn("control socket: bad request", "uid", uid, "err", err)
		s.reply(conn, Response{Error: err.Error()})
		return
	}
	hctx, cancel := context.WithTimeout(ctx, s.opts.HandleTimeout)
	defer cancel()
	data, err := safeHandle(hctx, h, req)
	if err != nil {
		s.reply(conn, Response{Error: err.Error()})
		return
	}
	st, ok := data.(Streamer)
	if !ok {
		raw, err := json.Marshal(data)
		if err != nil {
			s.reply(conn, Response{Error: fmt.Sprintf("encoding reply: %v", err)})
			return
		}
		st = rawReply(raw)
	}
	s.stream(conn, req, st)
}

// rawReply is reply data already encoded.
type rawReply []byte

func (r rawReply) WriteJSON(w io.Writer) error {
	_, err := w.Write(r)
	return err
}

// deadlineWriter renews the write deadline before every write, so a
// streamed reply may take as long as it needs while the peer keeps
// reading, and no longer than the timeout once it stops.
type deadlineWriter struct {
	conn    *net.UnixConn
	timeout time.Duration
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.conn.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.conn.Write(p)
}

// stream writes a successful response whose data st produces now, in
// 64 KiB writes: a streamed reply is never held whole. The bytes are those
// of json.Marshal(Response{OK: true, Data: data}).
func (s *Server) stream(conn *net.UnixConn, req Request, st Streamer) {
	bw := bufio.NewWriterSize(deadlineWriter{conn, s.opts.WriteTimeout}, 64<<10)
	_, err := bw.WriteString(`{"ok":true,"data":`)
	if err == nil {
		err = safeStream(st, bw)
	}
	if err == nil {
		_, err = bw.WriteString("}\n")
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		// The peer gets a truncated line, which its decoder rejects.
		s.opts.Logger.Warn("control socket: streaming a reply failed", "verb", req.Verb, "err", err)
		return
	}
	_ = conn.CloseWrite()
}

// safeStream runs st, turning a panic into an error.
func safeStream(st Streamer, w io.Writer) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error streaming a reply: %v", r)
		}
	}()
	return st.WriteJSON(w)
}

// safeHandle runs h, turning a panic into an error so one request can
// never stop the daemon.
func safeHandle(ctx context.Context, h Handler, req Request) (data any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error handling %s: %v", req.Verb, r)
		}
	}()
	return h.Handle(ctx, req)
}

// readLine reads one newline-terminated request of at most max bytes
// (EOF also terminates it).
func readLine(r io.Reader, max int) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, int64(max)+1), 4096)
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > max {
			return nil, badRequest("request larger than %d bytes", max)
		}
		if err == nil {
			return buf[:len(buf)-1], nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(buf) == 0 {
				return nil, badRequest("empty request")
			}
			return buf, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, badRequest("timed out reading the request")
		}
		return nil, fmt.Errorf("reading request: %w", err)
	}
}

func (s *Server) reply(conn *net.UnixConn, resp Response) {
	_ = conn.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	b, err := json.Marshal(resp)
	if err != nil {
		b = []byte(`{"ok":false,"error":"encoding reply failed"}`)
	}
	b = append(b, '\n')
	if _, err := conn.Write(b); err != nil {
		s.opts.Logger.Debug("control socket: writing reply", "err", err)
	}
	// Tell the peer we are done even if it is still sending.
	_ = conn.CloseWrite()
}
