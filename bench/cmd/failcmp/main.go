// Command failcmp compares the failures two engines found in the same log:
// `palisade regex --json --tz ZONE` output against `fail2ban-regex -o row`
// output (run with TZ=ZONE). A failure is its host and its time (whole
// seconds). It prints the counts and whether both sets are identical, with
// a few differences, and exits 0 when they are, 1 when they differ and 2
// on bad input.
//
//	failcmp -palisade FILE -fail2ban FILE [-tz UTC] [-show N]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// minTime marks a failure without a time.
const minTime = math.MinInt64

type key struct {
	host string
	unix int64
}

func main() {
	pal := flag.String("palisade", "", "palisade regex --json output")
	f2b := flag.String("fail2ban", "", "fail2ban-regex -o row output")
	tz := flag.String("tz", "UTC", "zone of palisade's times")
	show := flag.Int("show", 5, "differences to print per side")
	flag.Parse()
	loc, err := time.LoadLocation(*tz)
	if err != nil || *pal == "" || *f2b == "" {
		fmt.Fprintln(os.Stderr, "usage: failcmp -palisade FILE -fail2ban FILE [-tz ZONE]")
		os.Exit(2)
	}
	a, err := readPalisade(*pal, loc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "failcmp:", err)
		os.Exit(2)
	}
	b, err := readFail2ban(*f2b)
	if err != nil {
		fmt.Fprintln(os.Stderr, "failcmp:", err)
		os.Exit(2)
	}
	onlyA, onlyB := diff(a, b), diff(b, a)
	fmt.Printf("failures: palisade %d, fail2ban %d; only palisade %d, only fail2ban %d\n",
		total(a), total(b), total(onlyA), total(onlyB))
	for _, side := range []struct {
		name string
		m    map[key]int
	}{{"only palisade", onlyA}, {"only fail2ban", onlyB}} {
		for i, k := range sorted(side.m) {
			if i == *show {
				break
			}
			fmt.Printf("  %s: %s %s (x%d)\n", side.name, k.host, time.Unix(k.unix, 0).In(loc).Format(time.DateTime), side.m[k])
		}
	}
	if len(onlyA) == 0 && len(onlyB) == 0 {
		fmt.Println("identical: yes")
		return
	}
	fmt.Println("identical: no")
	os.Exit(1)
}

func norm(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return h
}

func readPalisade(path string, loc *time.Location) (map[key]int, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	m := map[key]int{}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 || sc.Bytes()[0] != '{' {
			continue
		}
		var o struct {
			Host string  `json:"host"`
			Time *string `json:"time"`
		}
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		k := key{host: norm(o.Host), unix: minTime}
		if o.Time != nil {
			t, err := time.ParseInLocation("2006-01-02T15:04:05", strings.SplitN(*o.Time, ".", 2)[0], loc)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: time: %w", path, n, err)
			}
			k.unix = t.Unix()
		}
		m[k]++
	}
	return m, sc.Err()
}

// readFail2ban reads rows like "['203.0.113.5',\t1795549251.0,\t{...}],".
func readFail2ban(path string) (map[key]int, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	m := map[key]int{}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !strings.HasPrefix(line, "['") {
			continue
		}
		host, rest, ok := strings.Cut(line[2:], "',")
		if !ok {
			return nil, fmt.Errorf("%s:%d: bad row", path, n)
		}
		rest = strings.TrimSpace(rest)
		num, _, _ := strings.Cut(rest, ",")
		k := key{host: norm(host), unix: minTime}
		if num != "None" {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: time %q: %w", path, n, num, err)
			}
			k.unix = int64(f)
		}
		m[k]++
	}
	return m, sc.Err()
}

func diff(a, b map[key]int) map[key]int {
	out := map[key]int{}
	for k, n := range a {
		if d := n - b[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func total(m map[key]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sorted(m map[key]int) []key {
	ks := make([]key, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].unix != ks[j].unix {
			return ks[i].unix < ks[j].unix
		}
		return ks[i].host < ks[j].host
	})
	return ks
}
