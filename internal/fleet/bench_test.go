package fleet_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/fleet"
	"github.com/palisade-project/palisade/internal/fleet/fleettest"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

// fleetOf returns n origin names and their keys.
func fleetOf(b testing.TB, n int) ([]string, fleetKeys) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("m%04d", i)
	}
	return names, newKeys(b, names...)
}

// publishBans puts one signed ban per address into the stream, spread
// over origins. addr gives the i-th address, issued the i-th issue time
// (an hour's spread keeps the default rate cap of 600 per origin and
// minute satisfied, as in a real fleet).
func publishBans(b testing.TB, url string, names []string, keys fleetKeys, total int, ttl time.Duration,
	addr func(i int) netip.Addr, issued func(i int) time.Time) {
	b.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range total {
		o := names[i%len(names)]
		r := fleet.Record{Origin: o, Kind: fleet.KindBan, Prefix: netip.PrefixFrom(addr(i), 32), Jail: "sshd",
			Reason: "5 failures within 10m", Issued: issued(i), Expires: now.Add(ttl), Seq: uint64(now.UnixMicro()) + uint64(i)}
		body, err := fleet.Sign(r, keys[o])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync(r.Subject(), body, jetstream.WithMsgTTL(ttl)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatal("publishing did not complete")
	}
}

// BenchmarkCatchUp100k: a daemon that was offline joins a stream holding
// 100,000 active bans of 100 origins: the time until all are enforced
// (verified, judged, stored, in the ban manager and its firewall) is the
// time per operation.
func BenchmarkCatchUp100k(b *testing.B) { benchCatchUp(b, nil) }

// BenchmarkCatchUp100kNftables is BenchmarkCatchUp100k with the bans
// enforced in real nftables, in a network namespace of its own (root).
func BenchmarkCatchUp100kNftables(b *testing.B) {
	nstest.RequireRoot(b)
	ns := nstest.New(b)
	be, err := nft.New(nft.Options{NetNSFd: ns.Fd()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Teardown(context.Background()); be.Close() })
	benchCatchUp(b, func() firewall.Backend {
		// Each member starts with an empty table, as with the Fake.
		be.Teardown(context.Background())
		spec := firewall.JailSpec{Name: fleet.DefaultJail, Scope: firewall.Scope{Protocol: "all"}}
		if err := be.Setup(context.Background(), []firewall.JailSpec{spec}); err != nil {
			b.Fatal(err)
		}
		return be
	})
}

// benchCatchUp runs the catch-up; backend, when set, gives each member's
// firewall (default: the Fake).
func benchCatchUp(b *testing.B, backend func() firewall.Backend) {
	const total, origins = 100_000, 100
	srv := fleettest.Start(b, fleettest.Options{})
	initStream(b, srv, fleet.Conn{})
	names, keys := fleetOf(b, origins)
	keys["observer"] = newKeys(b, "observer")["observer"]
	now := time.Now()
	publishBans(b, srv.URL(), names, keys, total, 6*time.Hour,
		func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) },
		func(i int) time.Time { return now.Add(-time.Duration(i%3600) * time.Second) })
	var took, cpu []time.Duration
	for b.Loop() {
		var be firewall.Backend
		if backend != nil {
			be = backend()
		}
		m := newMemberWith(b, srv.URL(), "observer", keys, append(names, "observer"), func(c *fleet.Config) {
			c.Policy.Caps = fleet.Caps{Rate: fleet.DefaultRate, Active: fleet.DefaultActive, TTL: fleet.DefaultTTL}
		}, be)
		t0, c0 := time.Now(), cpuTime(b)
		poll.Until(b, 2*time.Minute, "catch-up", func() bool {
			active, _ := m.bans.Count(fleet.DefaultJail)
			return m.node.Status().CaughtUp && active == total
		})
		took = append(took, time.Since(t0))
		cpu = append(cpu, cpuTime(b)-c0)
		if be != nil {
			if l, err := be.List(context.Background()); err != nil || len(l) != total {
				b.Fatalf("the firewall holds %d bans, want %d (%v)", len(l), total, err)
			}
		}
		if st := m.node.Status(); len(st.Refused) > 0 {
			b.Fatalf("refused %v", st.Refused)
		}
		m.stop()
	}
	slices.Sort(took)
	slices.Sort(cpu)
	med := took[len(took)/2]
	b.ReportMetric(med.Seconds(), "s/catch-up")
	// The CPU the process (the embedded server included) spent on it:
	// what the other engineers' load on this machine does not move.
	b.ReportMetric(cpu[len(cpu)/2].Seconds(), "cpu-s/catch-up")
	b.ReportMetric(float64(total)/med.Seconds(), "bans/s")
}

// sim is one simulated fleet member: its own connection and ordered
// consumer of the stream, verifying every record as a daemon does (or,
// receive-only, just counting it).
type sim struct {
	nc       *nats.Conn
	cc       jetstream.ConsumeContext
	verified atomic.Int64
}

// startSims starts n simulated members; with trust nil they only count
// what they receive.
func startSims(b *testing.B, url string, n int, trust *fleet.Trust) []*sim {
	sims := make([]*sim, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range sims {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s := &sim{}
			nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("sim%d", i)))
			if err != nil {
				errs <- err
				return
			}
			s.nc = nc
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cons, err := js.OrderedConsumer(ctx, fleet.DefaultStream, jetstream.OrderedConsumerConfig{
				FilterSubjects: []string{fleet.SubjectRoot + ".>"}, DeliverPolicy: jetstream.DeliverNewPolicy})
			if err != nil {
				errs <- err
				return
			}
			s.cc, err = cons.Consume(func(m jetstream.Msg) {
				if trust == nil {
					s.verified.Add(1)
				} else if v := fleet.Verify(m.Subject(), m.Data(), trust); v.Refused == "" {
					s.verified.Add(1)
				}
			})
			if err != nil {
				errs <- err
				return
			}
			sims[i] = s
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, s := range sims {
			s.cc.Stop()
			s.nc.Close()
		}
	})
	return sims
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPropagation1000: 1,000 fleet members on one embedded server
// (998 simulated: a connection and an ordered consumer each, verifying
// every record; plus two real nodes). Each operation is one ban on the
// publishing node; the metrics are the time until the observing node
// enforces it (median, max), the CPU the whole process (server and all
// members) spent per ban, and, in a second phase, the records per second
// the whole fleet receives and verifies.
//
// Everything runs on this machine's cores: 998 members' signature checks
// included, which in a real fleet each member does on its own CPU. See
// BenchmarkPropagation1000ReceiveOnly for the same fleet without them.
func BenchmarkPropagation1000(b *testing.B) { benchPropagation(b, true) }

// BenchmarkPropagation1000ReceiveOnly is BenchmarkPropagation1000 with
// simulated members that receive every record but do not verify it: the
// server's fan-out to 1,000 consumers and the two real nodes (which do
// verify) stay; the 998 other members' checks, which a real fleet spreads
// over 998 machines, leave this box (BenchmarkVerify gives their cost per
// record).
func BenchmarkPropagation1000ReceiveOnly(b *testing.B) { benchPropagation(b, false) }

func benchPropagation(b *testing.B, simsVerify bool) {
	const members = 1000
	srv := fleettest.Start(b, fleettest.Options{})
	initStream(b, srv, fleet.Conn{})
	names, keys := fleetOf(b, members)
	trust := keys.trust(names...)
	simTrust := trust
	if !simsVerify {
		simTrust = nil
	}
	sims := startSims(b, srv.URL(), members-2, simTrust)
	pub := newMember(b, srv.URL(), names[0], keys, names, nil)
	obs := newMember(b, srv.URL(), names[1], keys, names, nil)
	pub.waitCaughtUp()
	obs.waitCaughtUp()
	events, cancel := obs.bans.Subscribe(4096)
	defer cancel()

	var lat []time.Duration
	i := 0
	cpu0 := cpuTime(b)
	for b.Loop() {
		i++
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32)
		t0 := time.Now()
		if _, err := pub.bans.Ban(context.Background(), "sshd", p, time.Hour, "bench"); err != nil {
			b.Fatal(err)
		}
		for done := false; !done; {
			select {
			case ev := <-events:
				done = ev.Kind == ban.EventBan && ev.Entry.Prefix == p
			case <-time.After(30 * time.Second):
				b.Fatalf("ban %s not propagated", p)
			}
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(20 * time.Millisecond) // a steady trickle, not a burst
	}
	// Every member received every ban: the CPU they took is all counted.
	poll.Until(b, 5*time.Minute, "every member received every ban", func() bool {
		for _, s := range sims {
			if s.verified.Load() < int64(i) {
				return false
			}
		}
		return true
	})
	cpu := cpuTime(b) - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ms-max")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(i), "cpu-ms/ban")

	// Throughput: a burst of records from many origins; the time until
	// every simulated member received (and verified) all of them.
	b.StopTimer()
	const burst = 2000
	base := make([]int64, len(sims))
	for k, s := range sims {
		base[k] = s.verified.Load()
	}
	t0 := time.Now()
	now := time.Now()
	publishBans(b, srv.URL(), names, keys, burst, time.Hour,
		func(i int) netip.Addr { return netip.AddrFrom4([4]byte{100, 84, byte(i >> 8), byte(i)}) },
		func(int) time.Time { return now })
	poll.Until(b, 5*time.Minute, "every member received the burst", func() bool {
		for k, s := range sims {
			if s.verified.Load()-base[k] < burst {
				return false
			}
		}
		return true
	})
	d := time.Since(t0)
	b.ReportMetric(float64(burst)/d.Seconds(), "records/s")
	b.ReportMetric(float64(burst)*float64(len(sims))/d.Seconds(), "verified-deliveries/s")
}
