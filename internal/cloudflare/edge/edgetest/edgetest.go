// Package edgetest is a local fake of Cloudflare's IP Access Rules API for
// tests (httptest on loopback). It is imported only by tests.
package edgetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Rule is a rule as the API holds it.
type Rule struct {
	ID            string `json:"id,omitempty"`
	Mode          string `json:"mode"`
	Configuration struct {
		Target string `json:"target"`
		Value  string `json:"value"`
	} `json:"configuration"`
	Notes string `json:"notes"`
}

// NewRule builds a block rule.
func NewRule(target, value, notes string) Rule {
	r := Rule{Mode: "block", Notes: notes}
	r.Configuration.Target, r.Configuration.Value = target, value
	return r
}

// Call is one POST or DELETE the fake received (listings are not
// recorded).
type Call struct {
	Method string
	// Path is the part after .../access_rules/rules ("" or "/ID").
	Path string
	Body Rule
}

// API is the fake. Zone and Token are what it accepts; requests under any
// other zone or without the token fail as Cloudflare's would.
type API struct {
	Zone, Token string
	// URL is the API root to configure (BaseURL / api_url).
	URL string

	t        testing.TB
	mu       sync.Mutex
	rules    map[string]Rule
	nextID   int
	calls    []Call
	failures []int
	broken   bool
}

// New starts a fake API on loopback; it stops when the test ends.
func New(t testing.TB, zone, token string) *API {
	f := &API{Zone: zone, Token: token, t: t, rules: map[string]Rule{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL + "/client/v4"
	return f
}

func reply(w http.ResponseWriter, status int, success bool, result any, info any, errs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	el := []map[string]any{}
	for _, e := range errs {
		code, msg, _ := strings.Cut(e, " ")
		n, _ := strconv.Atoi(code)
		el = append(el, map[string]any{"code": n, "message": msg})
	}
	body := map[string]any{"success": success, "errors": el, "messages": []any{}, "result": result}
	if info != nil {
		body["result_info"] = info
	}
	_ = json.NewEncoder(w).Encode(body)
}

func (f *API) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.Token {
		reply(w, http.StatusForbidden, false, nil, nil, "10000 Authentication error")
		return
	}
	base := "/client/v4/zones/" + f.Zone + "/firewall/access_rules/rules"
	c := Call{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, base)}
	if r.Method == http.MethodPost {
		b, _ := io.ReadAll(r.Body)
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c.Body); err != nil {
			f.t.Errorf("fake Cloudflare API: POST body %s: %v", b, err)
		}
	}
	if r.Method != http.MethodGet {
		f.calls = append(f.calls, c)
	}
	if len(f.failures) > 0 || f.broken {
		st := http.StatusInternalServerError
		if len(f.failures) > 0 {
			st = f.failures[0]
			f.failures = f.failures[1:]
		}
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		reply(w, st, false, nil, nil, "10429 rate limited or broken")
		return
	}
	if !strings.HasPrefix(r.URL.Path, base) {
		reply(w, http.StatusNotFound, false, nil, nil, "7003 no route")
		return
	}
	switch {
	case r.Method == http.MethodPost && c.Path == "":
		for _, old := range f.rules {
			if old.Configuration.Value == c.Body.Configuration.Value {
				reply(w, http.StatusBadRequest, false, nil, nil, "10009 firewallaccessrules.api.duplicate_of_existing")
				return
			}
		}
		f.nextID++
		rule := c.Body
		rule.ID = fmt.Sprintf("%032x", f.nextID)
		f.rules[rule.ID] = rule
		reply(w, http.StatusOK, true, rule, nil)
	case r.Method == http.MethodDelete && strings.HasPrefix(c.Path, "/"):
		id := strings.TrimPrefix(c.Path, "/")
		if _, ok := f.rules[id]; !ok {
			reply(w, http.StatusNotFound, false, nil, nil, "10001 not found")
			return
		}
		delete(f.rules, id)
		reply(w, http.StatusOK, true, map[string]string{"id": id}, nil)
	case r.Method == http.MethodGet && c.Path == "":
		q := r.URL.Query()
		var out []Rule
		for _, rule := range f.rules {
			if n := q.Get("notes"); n != "" && !strings.Contains(strings.ToLower(rule.Notes), strings.ToLower(n)) {
				continue
			}
			if v := q.Get("configuration.value"); v != "" && rule.Configuration.Value != v {
				continue
			}
			out = append(out, rule)
		}
		slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.ID, b.ID) })
		per, _ := strconv.Atoi(q.Get("per_page"))
		page, _ := strconv.Atoi(q.Get("page"))
		if per <= 0 || page <= 0 {
			f.t.Errorf("fake Cloudflare API: list without paging: %s", r.URL.RawQuery)
			per, page = 100, 1
		}
		pages := (len(out) + per - 1) / per
		lo, hi := min((page-1)*per, len(out)), min(page*per, len(out))
		reply(w, http.StatusOK, true, out[lo:hi], map[string]int{"page": page, "per_page": per, "total_pages": pages, "count": hi - lo, "total_count": len(out)})
	default:
		reply(w, http.StatusMethodNotAllowed, false, nil, nil, "10000 method")
	}
}

// Snapshot returns the rules by id and the calls so far.
func (f *API) Snapshot() (map[string]Rule, []Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rules := map[string]Rule{}
	for k, v := range f.rules {
		rules[k] = v
	}
	return rules, slices.Clone(f.calls)
}

// Fail makes the next requests answer with these status codes.
func (f *API) Fail(codes ...int) {
	f.mu.Lock()
	f.failures = append(f.failures, codes...)
	f.mu.Unlock()
}

// SetBroken makes every request answer 500 until called with false.
func (f *API) SetBroken(b bool) {
	f.mu.Lock()
	f.broken = b
	f.mu.Unlock()
}

// Add stores a rule (as if made in the dashboard) and returns its id.
func (f *API) Add(r Rule) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	r.ID = fmt.Sprintf("%032x", f.nextID)
	f.rules[r.ID] = r
	return r.ID
}

// Remove deletes a rule behind palisade's back.
func (f *API) Remove(id string) {
	f.mu.Lock()
	delete(f.rules, id)
	f.mu.Unlock()
}

// Values lists "VALUE NOTES" of every rule, sorted.
func (f *API) Values() []string {
	rules, _ := f.Snapshot()
	var out []string
	for _, r := range rules {
		out = append(out, r.Configuration.Value+" "+r.Notes)
	}
	slices.Sort(out)
	return out
}
