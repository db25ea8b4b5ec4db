package ini

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type tagCase struct {
	name        string
	tags        []Option
	ignore      []string
	conditional string
	want        []Option // nil with wantErr
	wantErr     string
}

func opts(kv ...string) []Option {
	var out []Option
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Option{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

var tagTests = []tagCase{
	{name: "simple", tags: opts("a", "3", "b", "<a>_3"), want: opts("a", "3", "b", "3_3")},
	{name: "chain", tags: opts("c", "<b>!", "b", "<a>-", "a", "x"), want: opts("c", "x-!", "b", "x-", "a", "x")},
	{name: "unknown tags stay", tags: opts("f", "^<HOST> <F-USER>u</F-USER> <SKIPLINES> <a b>", "x", "1"), want: opts("f", "^<HOST> <F-USER>u</F-USER> <SKIPLINES> <a b>", "x", "1")},
	{name: "nested name", tags: opts("logtype", "file", "p", "<lt_<logtype>>", "lt_file", "F", "lt_journal", "J"), want: opts("logtype", "file", "p", "F", "lt_file", "F", "lt_journal", "J")},
	{name: "every occurrence", tags: opts("a", "x", "b", "<a><a> <a>"), want: opts("a", "x", "b", "xx x")},
	{name: "self reference", tags: opts("a", "<a>"), wantErr: "refers to itself"},
	{name: "mutual reference", tags: opts("a", "<b>", "b", "<a>"), wantErr: "refers to itself"},
	{name: "growth bounded", tags: opts("a", "<b><b>", "b", "<c><c>", "c", "x"), want: opts("a", "xxxx", "b", "xx", "c", "x")},
	{name: "ignore", tags: opts("a", "<b>", "b", "1", "c", "<b>"), ignore: []string{"b"}, want: opts("a", "<b>", "b", "1", "c", "<b>")},
	{name: "ignored tag not substituted into", tags: opts("a", "<b>", "b", "1"), ignore: []string{"a"}, want: opts("a", "<b>", "b", "1")},
	{name: "conditional", tags: opts("a", "<port>", "port", "1", "port?family=inet6", "6"), conditional: "family=inet6", want: opts("a", "6", "port", "1", "port?family=inet6", "6")},
	{name: "duplicates like a dict", tags: opts("a", "1", "b", "<a>", "a", "2"), want: opts("a", "2", "b", "2")},
	{name: "unbalanced brackets", tags: opts("a", "<<b>>", "b", "1", "c", "<b"), want: opts("a", "<1>", "b", "1", "c", "<b")},
}

func TestSubstituteTags(t *testing.T) {
	for _, tc := range tagTests {
		t.Run(tc.name, func(t *testing.T) {
			ig := map[string]bool{}
			for _, i := range tc.ignore {
				ig[i] = true
			}
			got, err := SubstituteTags(tc.tags, TagOptions{Ignore: ig, Conditional: tc.conditional})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSubstituteTagsLookup(t *testing.T) {
	calls := 0
	lookup := func(name string) (string, bool, error) {
		calls++
		switch name {
		case "lt_file/__prefix_line":
			return "<__hostname> ", true, nil
		case "__hostname":
			return `\S+`, true, nil
		}
		return "", false, nil
	}
	got, err := SubstituteTags(opts("logtype", "file", "failregex", "^<lt_<logtype>/__prefix_line>x <HOST>$"), TagOptions{Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if want := opts("logtype", "file", "failregex", `^\S+ x <HOST>$`); !cmp.Equal(want, got) {
		t.Errorf("got %v, want %v", got, want)
	}
	if calls == 0 {
		t.Errorf("lookup not used")
	}
	big := strings.Repeat("<a>", 1000)
	_, err = SubstituteTags(opts("a", "x", "b", big, "c", strings.Repeat("<b>", 30), "d", strings.Repeat("<c>", 30), "e", strings.Repeat("<d>", 30)), TagOptions{})
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("value growth: err = %v, want a size error", err)
	}
}

type helperResult struct {
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

func fail2banHelpers(t *testing.T, cases []map[string]any) []helperResult {
	t.Helper()
	needFail2ban(t)
	script, err := filepath.Abs("testdata/f2b_helpers.py")
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(cases)
	cmd := exec.Command("python3", script)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	var res []helperResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("reference output: %v (%d results)", err, len(res))
	}
	return res
}

func optPairs(o []Option) [][2]string {
	out := [][2]string{}
	for _, x := range o {
		out = append(out, [2]string{x.Name, x.Value})
	}
	return out
}

func TestSubstituteTagsLikeFail2ban(t *testing.T) {
	var cases []map[string]any
	for _, tc := range tagTests {
		cases = append(cases, map[string]any{"tags": optPairs(tc.tags), "ignore": tc.ignore, "conditional": tc.conditional})
	}
	refs := fail2banHelpers(t, cases)
	for i, tc := range tagTests {
		ig := map[string]bool{}
		for _, x := range tc.ignore {
			ig[x] = true
		}
		got, err := SubstituteTags(tc.tags, TagOptions{Ignore: ig, Conditional: tc.conditional})
		if (err != nil) != (refs[i].Error != "") {
			t.Errorf("%s: palisade err %v, fail2ban err %q", tc.name, err, refs[i].Error)
			continue
		}
		if err != nil {
			continue
		}
		var want [][2]string
		if err := json.Unmarshal(refs[i].Result, &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, optPairs(got)); diff != "" {
			t.Errorf("%s: fail2ban (-) palisade (+):\n%s", tc.name, diff)
		}
	}
}
