package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/palisade-project/palisade/internal/firewall"
)

// router is the firewall.Backend the ban manager drives: it sends each
// jail's specs and bans to the backend that enforces that jail (the
// jail's banaction's native backend or its action.d file), and the rest to
// the default backend.
//
// Backends that cannot list their bans keep ErrNotListable's meaning per
// backend: while another backend can list, the router lists for them the
// bans it added successfully and has not removed (the ban manager's record),
// so reconcile neither re-adds nor removes those; when no backend can list,
// List returns ErrNotListable.
type router struct {
	mu          sync.Mutex
	def         firewall.Backend
	byJail      map[string]firewall.Backend
	backends    []firewall.Backend // distinct, def first
	notListable map[firewall.Backend]bool
	used        map[firewall.Backend]bool // given jails at the last Setup
	tracked     map[firewall.Backend]map[banKey]firewall.Ban
}

type banKey struct {
	jail   string
	prefix string
}

// newRouter returns a router sending every jail to def until route says
// otherwise.
func newRouter(ctx context.Context, def firewall.Backend) *router {
	r := &router{def: def, byJail: map[string]firewall.Backend{},
		notListable: map[firewall.Backend]bool{}, tracked: map[firewall.Backend]map[banKey]firewall.Ban{}}
	r.addBackend(ctx, def)
	return r
}

// addBackend registers b (once), probing whether it can list. The probe
// runs with a cancelled context: a backend that cannot list says so at
// once, one that can stops before reading its bans (an nftables dump of
// 100,000 elements took seconds at every start).
func (r *router) addBackend(ctx context.Context, b firewall.Backend) {
	for _, have := range r.backends {
		if have == b {
			return
		}
	}
	r.backends = append(r.backends, b)
	probe, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.List(probe); errors.Is(err, firewall.ErrNotListable) {
		r.notListable[b] = true
		r.tracked[b] = map[banKey]firewall.Ban{}
	}
}

// route sends jail's specs and bans to b from now on.
func (r *router) route(ctx context.Context, jail string, b firewall.Backend) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addBackend(ctx, b)
	r.byJail[jail] = b
}

// backendOf returns jail's backend.
func (r *router) backendOf(jail string) firewall.Backend {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.byJail[jail]; ok {
		return b
	}
	return r.def
}

// all returns the distinct backends.
func (r *router) all() []firewall.Backend {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]firewall.Backend(nil), r.backends...)
}

// Name implements firewall.Backend: the names of the backends enforcing
// jails, joined by "+" (the default backend first); the default backend's
// name before any Setup.
func (r *router) Name() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, b := range r.backends {
		if r.used[b] {
			names = append(names, b.Name())
		}
	}
	if len(names) == 0 {
		return r.def.Name()
	}
	if r.used[r.def] {
		sort.Strings(names[1:])
	} else {
		sort.Strings(names)
	}
	return strings.Join(names, "+")
}

// Setup implements firewall.Backend: each backend sets up its own jails.
func (r *router) Setup(ctx context.Context, jails []firewall.JailSpec) error {
	errs := r.SetupEach(ctx, jails)
	seen := map[string]bool{}
	var out []error
	for _, j := range jails {
		if e := errs[j.Name]; e != nil && !seen[e.Error()] {
			seen[e.Error()] = true
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

// SetupEach sets up each backend with its own jails, like Setup, and
// returns each jail whose backend refused with that backend's error, so
// one backend's failure (an inactive ufw) marks only its jails.
func (r *router) SetupEach(ctx context.Context, jails []firewall.JailSpec) map[string]error {
	groups := map[firewall.Backend][]firewall.JailSpec{}
	for _, j := range jails {
		b := r.backendOf(j.Name)
		groups[b] = append(groups[b], j)
	}
	r.mu.Lock()
	r.used = map[firewall.Backend]bool{}
	for b := range groups {
		r.used[b] = true
	}
	r.mu.Unlock()
	out := map[string]error{}
	for _, b := range r.all() {
		specs, ok := groups[b]
		if !ok {
			continue
		}
		if err := b.Setup(ctx, specs); err != nil {
			for _, j := range specs {
				out[j.Name] = fmt.Errorf("%s: %w", b.Name(), err)
			}
		}
	}
	return out
}

func (r *router) split(bans []firewall.Ban) map[firewall.Backend][]firewall.Ban {
	r.mu.Lock()
	single := len(r.backends) == 1
	r.mu.Unlock()
	if single {
		// One backend: no copy of a bulk restore's list.
		return map[firewall.Backend][]firewall.Ban{r.def: bans}
	}
	groups := map[firewall.Backend][]firewall.Ban{}
	for _, b := range bans {
		be := r.backendOf(b.Jail)
		groups[be] = append(groups[be], b)
	}
	return groups
}

// Add implements firewall.Backend.
func (r *router) Add(ctx context.Context, bans []firewall.Ban) error {
	return r.apply(ctx, bans, true, false)
}

// Remove implements firewall.Backend.
func (r *router) Remove(ctx context.Context, bans []firewall.Ban) error {
	return r.apply(ctx, bans, false, false)
}

// apply adds or removes bans, each group through its backend; missing
// adds with AddMissing where a backend has it (firewall.MissingAdder).
func (r *router) apply(ctx context.Context, bans []firewall.Ban, add, missing bool) error {
	var errs []error
	groups := r.split(bans)
	for _, b := range r.all() {
		if err := r.applyGroup(ctx, b, groups[b], add, missing); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// applyTo adds or removes bans in backend b (whatever their jails' route
// says now), keeping the record of what a backend that cannot list holds.
func (r *router) applyTo(ctx context.Context, b firewall.Backend, group []firewall.Ban, add bool) error {
	return r.applyGroup(ctx, b, group, add, false)
}

// applyGroup is applyTo; missing adds through b's AddMissing when it has
// one (firewall.MissingAdder).
func (r *router) applyGroup(ctx context.Context, b firewall.Backend, group []firewall.Ban, add, missing bool) error {
	if len(group) == 0 {
		return nil
	}
	var err error
	ma, hasMissing := b.(firewall.MissingAdder)
	switch {
	case add && missing && hasMissing:
		err = ma.AddMissing(ctx, group)
	case add:
		err = b.Add(ctx, group)
	default:
		err = b.Remove(ctx, group)
	}
	r.mu.Lock()
	if t := r.tracked[b]; t != nil {
		for _, ban := range group {
			k := banKey{ban.Jail, ban.Prefix.String()}
			switch {
			case !add:
				delete(t, k)
			case err == nil:
				t[k] = ban
			}
		}
	}
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", b.Name(), err)
	}
	return nil
}

// List implements firewall.Backend: every backend's bans, those of the
// backends that cannot list taken from what the router added.
func (r *router) List(ctx context.Context) ([]firewall.Ban, error) {
	var out []firewall.Ban
	listable := false
	for _, b := range r.all() {
		r.mu.Lock()
		if t, ok := r.tracked[b]; ok {
			for _, ban := range t {
				out = append(out, ban)
			}
			r.mu.Unlock()
			continue
		}
		r.mu.Unlock()
		bans, err := b.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		listable = true
		out = append(out, bans...)
	}
	if !listable {
		return nil, firewall.ErrNotListable
	}
	return out, nil
}

// Teardown implements firewall.Backend: every backend, errors joined.
func (r *router) Teardown(ctx context.Context) error {
	var errs []error
	for _, b := range r.all() {
		if err := b.Teardown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
		}
		r.mu.Lock()
		if t := r.tracked[b]; t != nil {
			r.tracked[b] = map[banKey]firewall.Ban{}
		}
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// close releases the backends holding resources, except keep.
func (r *router) close(keep firewall.Backend) {
	for _, b := range r.all() {
		if c, ok := b.(interface{ Close() error }); ok && b != keep {
			c.Close()
		}
	}
}
