package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn says how to reach NATS.
type Conn struct {
	// Servers are nats:// or tls:// URLs (default nats://127.0.0.1:4222).
	Servers []string
	// Creds is a NATS credentials file (JWT and seed); NKey a seed file;
	// User and Password plain authentication. At most one is used, in
	// that order.
	Creds    string
	NKey     string
	User     string
	Password string
	// CA verifies the server; Cert and Key authenticate this client
	// (mutual TLS).
	CA, Cert, Key string
	// Timeout bounds one connection attempt (default 5s).
	Timeout time.Duration
	// ReconnectWait is the pause between reconnect attempts (default 1s,
	// with jitter).
	ReconnectWait time.Duration
}

// DefaultServer is used when no server is configured.
const DefaultServer = "nats://127.0.0.1:4222"

// Handlers are told about the connection.
type Handlers struct {
	Connected    func(url string)
	Disconnected func(err error)
	Error        func(err error)
}

// Message is one record delivered by a replay.
type Message struct {
	Subject string
	Data    []byte
	// Pending is the number of messages of the replay after this one.
	Pending uint64
}

// Outgoing is one record to publish.
type Outgoing struct {
	Subject string
	Data    []byte
	// TTL is the message's time to live (0: none, it stays until
	// replaced).
	TTL time.Duration
	Seq uint64
}

// Subscription is a running replay.
type Subscription interface {
	Stop()
	// Pending is how many messages are still to be delivered.
	Pending(ctx context.Context) (uint64, error)
}

// StreamInfo describes the stream as the server reports it.
type StreamInfo struct {
	Name              string    `json:"name"`
	Messages          uint64    `json:"messages"`
	Bytes             uint64    `json:"bytes"`
	Subjects          []string  `json:"subjects,omitempty"`
	MaxMsgsPerSubject int64     `json:"max_msgs_per_subject"`
	AllowMsgTTL       bool      `json:"allow_msg_ttl"`
	Replicas          int       `json:"replicas"`
	Created           time.Time `json:"created,omitzero"`
	// Problem says what is wrong with the stream's settings (palisade
	// fleet init fixes it).
	Problem string `json:"problem,omitempty"`
	// Error is set when the stream could not be read.
	Error string `json:"error,omitempty"`
}

// Bus is the transport (NATS JetStream in production).
type Bus interface {
	Connected() bool
	ConnectedURL() string
	// Replay delivers every message of the stream from the start, then
	// follows it, calling fn in stream order from one goroutine.
	Replay(ctx context.Context, stream string, fn func(Message)) (Subscription, StreamInfo, error)
	// Publish publishes in order and returns the sequences acknowledged
	// by the stream, up to the first failure.
	Publish(ctx context.Context, out []Outgoing) ([]uint64, error)
	Close()
}

// natsOptions turns Conn into client options.
func natsOptions(c Conn, name string, h Handlers) ([]nats.Option, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	wait := c.ReconnectWait
	if wait <= 0 {
		wait = time.Second
	}
	opts := []nats.Option{
		nats.Name("palisade " + name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(wait),
		nats.ReconnectJitter(wait/2, wait),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1), // the node queues; nothing is buffered blindly
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.CustomInboxPrefix("_INBOX_" + name),
	}
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey %s: %w", c.NKey, err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	if c.Cert != "" {
		opts = append(opts, nats.ClientCert(c.Cert, c.Key))
	}
	if h.Connected != nil {
		opts = append(opts,
			nats.ConnectHandler(func(nc *nats.Conn) { h.Connected(nc.ConnectedUrlRedacted()) }),
			nats.ReconnectHandler(func(nc *nats.Conn) { h.Connected(nc.ConnectedUrlRedacted()) }))
	}
	if h.Disconnected != nil {
		opts = append(opts, nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { h.Disconnected(err) }))
	}
	if h.Error != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { h.Error(err) }))
	}
	return opts, nil
}

func servers(c Conn) string {
	if len(c.Servers) == 0 {
		return DefaultServer
	}
	return strings.Join(c.Servers, ",")
}

// natsBus is the Bus over a NATS connection.
type natsBus struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// DialNATS connects to NATS (retrying in the background when no server
// answers yet) as origin name.
func DialNATS(_ context.Context, c Conn, name string, h Handlers) (Bus, error) {
	opts, err := natsOptions(c, name, h)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(servers(c), opts...)
	if err != nil {
		return nil, fmt.Errorf("fleet: connect to %s: %w", servers(c), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &natsBus{nc: nc, js: js}, nil
}

func (b *natsBus) Connected() bool      { return b.nc.IsConnected() }
func (b *natsBus) ConnectedURL() string { return b.nc.ConnectedUrlRedacted() }
func (b *natsBus) Close()               { b.nc.Close() }

// streamInfo reads and checks the stream.
func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (StreamInfo, error) {
	si := StreamInfo{Name: name}
	s, err := js.Stream(ctx, name)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			err = fmt.Errorf("stream %s does not exist (create it with palisade fleet init)", name)
		}
		si.Error = err.Error()
		return si, err
	}
	info := s.CachedInfo()
	si.Messages, si.Bytes = info.State.Msgs, info.State.Bytes
	si.Subjects = info.Config.Subjects
	si.MaxMsgsPerSubject, si.AllowMsgTTL, si.Replicas = info.Config.MaxMsgsPerSubject, info.Config.AllowMsgTTL, info.Config.Replicas
	si.Created = info.Created
	si.Problem = checkStream(info.Config)
	return si, nil
}

func checkStream(c jetstream.StreamConfig) string {
	var p []string
	if c.MaxMsgsPerSubject != 1 {
		p = append(p, fmt.Sprintf("keeps %d messages per subject (want 1)", c.MaxMsgsPerSubject))
	}
	if !c.AllowMsgTTL {
		p = append(p, "does not allow per-message TTLs (needs nats-server 2.11 or later)")
	}
	covers := false
	for _, s := range c.Subjects {
		covers = covers || s == SubjectRoot+".>"
	}
	if !covers {
		p = append(p, fmt.Sprintf("does not hold %s.> (subjects %v)", SubjectRoot, c.Subjects))
	}
	if len(p) == 0 {
		return ""
	}
	return "the stream " + strings.Join(p, "; ") + ": run palisade fleet init"
}

type natsSub struct {
	cc   jetstream.ConsumeContext
	cons jetstream.Consumer
}

func (s *natsSub) Stop() { s.cc.Stop() }

func (s *natsSub) Pending(ctx context.Context) (uint64, error) {
	info, err := s.cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending, nil
}

func (b *natsBus) Replay(ctx context.Context, stream string, fn func(Message)) (Subscription, StreamInfo, error) {
	si, err := streamInfo(ctx, b.js, stream)
	if err != nil {
		return nil, si, err
	}
	cons, err := b.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{SubjectRoot + ".>"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, si, fmt.Errorf("consume %s: %w", stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var pending uint64
		if md, err := m.Metadata(); err == nil {
			pending = md.NumPending
		}
		fn(Message{Subject: m.Subject(), Data: m.Data(), Pending: pending})
	}, jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, si, fmt.Errorf("consume %s: %w", stream, err)
	}
	return &natsSub{cc: cc, cons: cons}, si, nil
}

// roundTTL rounds up to whole seconds (the server's resolution; at
// least 1s).
func roundTTL(d time.Duration) time.Duration {
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return max(d, time.Second)
}

func (b *natsBus) Publish(ctx context.Context, out []Outgoing) ([]uint64, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(out))
	var perr error
	for _, o := range out {
		m := nats.NewMsg(o.Subject)
		m.Data = o.Data
		var opts []jetstream.PublishOpt
		if o.TTL > 0 {
			opts = append(opts, jetstream.WithMsgTTL(roundTTL(o.TTL)))
		}
		f, err := b.js.PublishMsgAsync(m, opts...)
		if err != nil {
			perr = err
			break
		}
		futs = append(futs, f)
	}
	var acked []uint64
	for i, f := range futs {
		select {
		case <-f.Ok():
			if perr == nil || len(acked) == i {
				acked = append(acked, out[i].Seq)
			}
		case err := <-f.Err():
			if perr == nil {
				perr = err
			}
			// Later acks are not taken: a retry republishes them in order.
			return acked, perr
		case <-ctx.Done():
			return acked, ctx.Err()
		}
	}
	return acked, perr
}

// StreamConfig is the stream the fleet needs: one message per subject,
// per-message TTLs, file storage.
func StreamConfig(name string, replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:              name,
		Description:       "palisade fleet bans: one signed record per banned address, expiring with the ban",
		Subjects:          []string{SubjectRoot + ".>"},
		MaxMsgsPerSubject: 1,
		AllowMsgTTL:       true,
		Storage:           jetstream.FileStorage,
		Replicas:          replicas,
		Discard:           jetstream.DiscardOld,
		MaxMsgSize:        2 * MaxMessage,
		DenyDelete:        true,
	}
}

// InitStream creates the stream, or updates one whose settings differ,
// and returns it as the server reports it.
func InitStream(ctx context.Context, c Conn, client, stream string, replicas int) (StreamInfo, bool, error) {
	// A permission violation (a member's account) fails at once, not at
	// the request's timeout.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	opts, err := natsOptions(c, client, Handlers{Error: func(err error) {
		cancel(fmt.Errorf("%w (this account may not manage streams: use --user/--password or --creds of an admin account)", err))
	}})
	if err != nil {
		return StreamInfo{}, false, err
	}
	opts = append(opts, nats.RetryOnFailedConnect(false), nats.MaxReconnects(0))
	nc, err := nats.Connect(servers(c), opts...)
	if err != nil {
		return StreamInfo{}, false, fmt.Errorf("connect to %s: %w", servers(c), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return StreamInfo{}, false, err
	}
	cause := func(err error) error {
		if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
			return c
		}
		return err
	}
	_, err = js.Stream(ctx, stream)
	created := errors.Is(err, jetstream.ErrStreamNotFound)
	if err != nil && !created {
		return StreamInfo{}, false, fmt.Errorf("stream %s: %w", stream, cause(err))
	}
	if _, err := js.CreateOrUpdateStream(ctx, StreamConfig(stream, replicas)); err != nil {
		return StreamInfo{}, false, fmt.Errorf("create stream %s: %w", stream, cause(err))
	}
	si, err := streamInfo(ctx, js, stream)
	return si, created, err
}

// Permissions is a nats-server authorization block for origin: publish
// under its own subjects and consume the stream, nothing else.
func Permissions(origin, stream string) Perms {
	api := "$JS.API."
	return Perms{
		Publish: []string{
			SubjectRoot + "." + origin + ".>",
			api + "STREAM.INFO." + stream,
			api + "CONSUMER.CREATE." + stream + ".>",
			api + "CONSUMER.MSG.NEXT." + stream + ".>",
			api + "CONSUMER.INFO." + stream + ".>",
			api + "CONSUMER.DELETE." + stream + ".>",
		},
		Subscribe: []string{"_INBOX_" + origin + ".>"},
	}
}

// Perms are the subjects a fleet member may publish to and subscribe to.
type Perms struct {
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
}
