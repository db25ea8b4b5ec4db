package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func serveWith(t *testing.T, opts Options, h Handler) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "palisade.sock")
	srv, err := Listen(path, asTester(opts))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not stop")
		}
	})
	return srv, path
}

func seqOf[T any](l []T) iter.Seq[T] { return slices.Values(l) }

func sampleStatus() StatusReply {
	t := time.Date(2026, 11, 24, 19, 0, 0, 0, time.UTC)
	return StatusReply{
		Backend: "nftables", ConfigDir: `/etc/"palisade"<&>`, Started: t, ReloadError: "line 3: bad \u00e9 value",
		Jails: []JailStatus{
			{Name: "sshd", Filter: "sshd[mode=aggressive]", Sources: []string{"/var/log/auth.log"}, CurrentlyBanned: 3,
				Banned: []string{"192.0.2.1", "2001:db8::/64", "weird\"<name>"}},
			{Name: "empty", Sources: []string{}, Banned: []string{}, Error: "no log file"},
		},
	}
}

// TestStreamsMatchMarshal: a streamed reply is byte for byte what
// encoding/json makes of the same reply built whole (so that a field added
// to StatusReply or JailStatus cannot be lost by the stream).
func TestStreamsMatchMarshal(t *testing.T) {
	st := sampleStatus()
	lists := map[string][]string{}
	for _, j := range st.Jails {
		lists[j.Name] = j.Banned
	}
	stream := StatusStream{Reply: st, Banned: func(jail string) iter.Seq[string] { return seqOf(lists[jail]) }}
	stream.Reply.Jails = slices.Clone(st.Jails)
	for i := range stream.Reply.Jails {
		stream.Reply.Jails[i].Banned = nil
	}
	var got bytes.Buffer
	if err := stream.WriteJSON(&got); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(st)
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("status stream\n%s\nwant\n%s", got.Bytes(), want)
	}

	exp := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	bans := []BanEntry{
		{Jail: "sshd", IP: "192.0.2.1", Since: exp.Add(-time.Hour), Expires: &exp, Offences: 2},
		{Jail: "recidive", IP: "2001:db8::/64", Since: exp, Permanent: true, Offences: 1},
	}
	for _, tc := range []struct {
		name string
		list []BanEntry
	}{{"two", bans}, {"none", []BanEntry{}}} {
		got.Reset()
		if err := (BannedStream{Bans: seqOf(tc.list)}).WriteJSON(&got); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(BannedReply{Bans: tc.list})
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%s: banned stream\n%s\nwant\n%s", tc.name, got.Bytes(), want)
		}
	}
}

// TestStreamedReplyOverSocket: a reply with 50,000 bans (many buffers) goes through the
// socket and the client decodes it, in one line as before.
func TestStreamedReplyOverSocket(t *testing.T) {
	const n = 50_000
	addr := func(i int) string { return fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff) }
	h := HandlerFunc(func(_ context.Context, req Request) (any, error) {
		list := func(yield func(string) bool) {
			for i := 0; i < n; i++ {
				if !yield(addr(i)) {
					return
				}
			}
		}
		switch req.Verb {
		case VerbStatus:
			return StatusStream{Reply: StatusReply{Backend: "fake", Jails: []JailStatus{{Name: "sshd", CurrentlyBanned: n}}},
				Banned: func(string) iter.Seq[string] { return list }}, nil
		case VerbBanned:
			return BannedStream{Bans: func(yield func(BanEntry) bool) {
				for a := range list {
					if !yield(BanEntry{Jail: "sshd", IP: a, Permanent: true}) {
						return
					}
				}
			}}, nil
		}
		return PingReply{}, nil
	})
	_, path := serveWith(t, Options{}, h)
	c := NewClient(path)
	ctx := context.Background()
	st, err := c.Status(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Jails) != 1 || len(st.Jails[0].Banned) != n || st.Jails[0].Banned[n-1] != addr(n-1) {
		t.Fatalf("status: %d jails", len(st.Jails))
	}
	b, err := c.Banned(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Bans) != n || b.Bans[7].IP != addr(7) {
		t.Fatalf("banned: %d", len(b.Bans))
	}
	// The wire format stays one line.
	resp := rawCall(t, path, []byte(`{"verb":"status"}`+"\n"))
	if !resp.OK || bytes.Count(resp.Data, []byte(`"2001:db8:`)) != n {
		t.Fatalf("raw reply ok=%v", resp.OK)
	}
}

// TestIdleClientsDoNotBlock: 200 connections that never send anything do
// not stop status from being answered (with them, status used to wait
// 18 s), and the server never holds more than MaxConns connections.
func TestIdleClientsDoNotBlock(t *testing.T) {
	const idle = 200
	srv, path := serveWith(t, Options{}, echoHandler())
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < idle; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// Let the server accept them all (the admission is what is tested).
	deadline := time.Now().Add(10 * time.Second)
	for srv.accepted() < idle && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := srv.accepted(); got < idle {
		t.Fatalf("server accepted %d of %d idle connections", got, idle)
	}
	if open := srv.open(); open > 64 {
		t.Fatalf("%d connections open, bound 64", open)
	}
	// Normal is about a millisecond; 3 s is far above that and far below
	// the read timeout an idle client could hold a slot for.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		st, err := NewClient(path).Status(ctx, "")
		if err != nil || st.Backend != "fake" {
			t.Fatalf("status %d with %d idle clients: %+v, %v", i, idle, st, err)
		}
	}
	if open := srv.open(); open > 64 {
		t.Fatalf("%d connections open, bound 64", open)
	}
}

// TestBusyRefusedAtOnce: when every slot is answering a request, a new
// client gets a "busy" error at once instead of waiting.
func TestBusyRefusedAtOnce(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	h := HandlerFunc(func(ctx context.Context, req Request) (any, error) {
		if req.Verb == VerbReload {
			started.Done()
			<-release
		}
		return PingReply{Version: "x"}, nil
	})
	_, path := serveWith(t, Options{MaxConns: 2}, h)
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, err := NewClient(path).Reload(context.Background())
			errs <- err
		}()
	}
	started.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := NewClient(path).Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("ping while every slot is busy: %v, want a busy error", err)
	}
	close(release)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewClient(path).Ping(ctx); err != nil {
		t.Fatalf("ping after the busy ones finished: %v", err)
	}
}
