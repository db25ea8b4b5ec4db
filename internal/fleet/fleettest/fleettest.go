// Package fleettest runs a real nats-server with JetStream inside the
// test binary, for the fleet's tests and benchmarks (it is imported only
// by tests: the daemon never links nats-server).
package fleettest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/palisade-project/palisade/internal/fleet"
)

// User is an account on the server with the permissions a fleet member
// gets (fleet.Permissions), or every permission when Admin.
type User struct {
	Name, Password string
	Admin          bool
	// Perms default to fleet.Permissions(Name, Stream).
	Perms *fleet.Perms
}

// Options configure a server.
type Options struct {
	// Host and Port to listen on (default 127.0.0.1 and a free port).
	Host string
	Port int
	// Dir holds JetStream's files (default a temporary directory).
	Dir string
	// Users, when set, require authentication.
	Users []User
	// Stream is used for the users' default permissions (default
	// fleet.DefaultStream).
	Stream string
}

// Server is a running nats-server.
type Server struct {
	opts Options
	srv  *server.Server
	tmp  bool
}

// New starts a server.
func New(o Options) (*Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Stream == "" {
		o.Stream = fleet.DefaultStream
	}
	s := &Server{opts: o}
	if s.opts.Dir == "" {
		d, err := os.MkdirTemp("", "palisade-nats-")
		if err != nil {
			return nil, err
		}
		s.opts.Dir, s.tmp = d, true
	}
	if s.opts.Port == 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(o.Host, "0"))
		if err != nil {
			return nil, err
		}
		s.opts.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	if err := s.start(); err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

// Start starts a server stopped (and its files removed) when the test
// ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *Server) start() error {
	so := &server.Options{
		ServerName: "palisade-test", Host: s.opts.Host, Port: s.opts.Port,
		JetStream: true, StoreDir: s.opts.Dir, NoLog: true, NoSigs: true,
		MaxPayload: 1 << 20,
	}
	for _, u := range s.opts.Users {
		su := &server.User{Username: u.Name, Password: u.Password}
		if !u.Admin {
			p := fleet.Permissions(u.Name, s.opts.Stream)
			if u.Perms != nil {
				p = *u.Perms
			}
			su.Permissions = &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: p.Publish},
				Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
			}
		}
		so.Users = append(so.Users, su)
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New("nats-server did not become ready within 10s")
	}
	s.srv = srv
	return nil
}

// URL is the client URL.
func (s *Server) URL() string {
	return "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// Stop shuts the server down (its files stay, for Restart).
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Restart starts the stopped server again on the same port with the same
// files.
func (s *Server) Restart() error {
	s.Stop()
	var err error
	for range 50 { // the port may take a moment to be free again
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Close stops the server and removes a temporary store directory.
func (s *Server) Close() {
	s.Stop()
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.tmp {
		os.RemoveAll(s.opts.Dir)
	}
}
