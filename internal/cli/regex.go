package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/config/stock"
	"github.com/palisade-project/palisade/internal/filter"
	"github.com/palisade-project/palisade/internal/pipeline"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/journal"
)

// maxTopHosts bounds the distinct hosts counted for the summary.
const maxTopHosts = 100000

type regexFlags struct {
	json         bool
	opts         []string
	now          string
	tz           string
	configDir    string
	asWritten    bool
	datePattern  string
	out          string // -o: print this of each failure instead of the summary
	maxLines     int    // -L: replaces the filter's maxlines
	journalMatch string // -m: the journalmatch for LOG systemd-journal
	// the summary lists these lines (fail2ban-regex's --print-all-*)
	printMatched, printMissed, printIgnored bool
}

// newRegexCmd builds `palisade regex` (fail2ban-regex's equivalent).
func newRegexCmd(app *App) *cobra.Command {
	var fl regexFlags
	cmd := &cobra.Command{
		Use:   "regex [--json] [--opt NAME=VALUE]... [--now RFC3339] [--tz ZONE] LOG FILTER [IGNOREREGEX]",
		Short: "Test a filter against a log (like fail2ban-regex)",
		Long: "Run FILTER over LOG and report what it finds: a summary, or with --json one object\n" +
			"per failure. As with fail2ban-regex:\n\n" +
			"  LOG     a log file, \"-\" for standard input, or a log line itself (an argument\n" +
			"          with a space in it that names no file)\n" +
			"  FILTER  a filter name or the path of a filter file, with optional arguments\n" +
			"          (sshd[mode=aggressive]), or else a failregex itself (\"Failed .* from <HOST>\")\n" +
			"  IGNOREREGEX  an ignoreregex added to the filter's\n\n" +
			"A filter NAME is read from --config-dir's filter.d, then the built-ins, as a jail\n" +
			"reads it: when the files found are fail2ban's unmodified stock files, palisade's\n" +
			"built-in filter of that name is used instead, as the daemon does (--as-written\n" +
			"uses the files). A filter PATH is always used as written.",
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ignore []string
			if len(args) == 3 {
				ignore = args[2:]
			}
			return runRegex(app, fl, args[0], args[1], ignore)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&fl.json, "json", false, "print one JSON object per failure")
	f.StringArrayVar(&fl.opts, "opt", nil, "filter option NAME=VALUE (like filter = NAME[NAME=VALUE]); repeatable")
	f.StringVar(&fl.now, "now", "", "current time (RFC3339) for year inference and journal times (default: the real time)")
	f.StringVar(&fl.tz, "tz", "", "time zone of zone-less log times and of the output (default: local, $TZ)")
	f.StringVar(&fl.tz, "timezone", "", "the same as --tz (fail2ban-regex's name)")
	f.StringVarP(&fl.configDir, "config-dir", "c", "", "configuration directory whose filter.d a filter NAME is read from (default /etc/palisade)")
	f.StringVar(&fl.configDir, "config", "", "the same as --config-dir (fail2ban-regex's name)")
	f.StringVarP(&fl.out, "out", "o", "", "print only this of each failure, a line each: id, ip, msg (its line), a capture (user, host, ip4, ...) or a template of <name>s")
	f.BoolVar(&fl.asWritten, "as-written", false, "use fail2ban's stock filter files as written instead of palisade's built-in of the same name")
	f.StringVarP(&fl.datePattern, "datepattern", "d", "", "date pattern replacing the filter's (like a jail's datepattern)")
	f.IntVarP(&fl.maxLines, "maxlines", "L", 0, "lines a multi-line failregex spans, replacing the filter's maxlines")
	f.StringVarP(&fl.journalMatch, "journalmatch", "m", "", "journalctl matches replacing the filter's journalmatch (LOG systemd-journal only)")
	f.BoolVar(&fl.printMatched, "print-all-matched", false, "list the lines that gave a failure in the summary")
	f.BoolVar(&fl.printMissed, "print-all-missed", false, "list the lines no failregex matched in the summary")
	f.BoolVar(&fl.printIgnored, "print-all-ignored", false, "list the lines an ignoreregex (or a no-failure rule) took in the summary")
	return cmd
}

// regexRun is one run's setup.
type regexRun struct {
	note    string // the stock filter decision, if any
	flt     *filter.Filter
	def     filter.Definition
	loc     *time.Location
	now     func() time.Time
	clock   *filter.ReadClock // stamped by the log's reads (nil: --now)
	journal bool
}

// isFilterRef reports whether a FILTER argument names a filter (a name
// or a path, with optional [NAME=VALUE, ...] arguments) rather than being
// a failregex, by fail2ban-regex's rule: at most three leading slashes,
// then only word characters, '/', '-' and '.', then the arguments.
func isFilterRef(s string) bool {
	if i := strings.IndexByte(s, '['); i >= 0 {
		if !strings.HasSuffix(s, "]") {
			return false
		}
		s = s[:i]
	}
	rest := strings.TrimLeft(s, "/")
	if rest == "" || len(s)-len(rest) > 3 {
		return false
	}
	for _, r := range rest {
		if r != '_' && r != '/' && r != '-' && r != '.' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// cmdLineRegex names the filter made of a failregex given as FILTER.
const cmdLineRegex = "(failregex from the command line)"

func setupRegex(app *App, fl regexFlags, filterArg string, ignore []string, fromJournal bool) (*regexRun, error) {
	loc := time.Local
	if fl.tz != "" {
		l, err := time.LoadLocation(fl.tz)
		if err != nil {
			return nil, usageErr("--tz %q: %v", fl.tz, err)
		}
		loc = l
	}
	// the real time, read once per read of the log (not per line)
	var clock *filter.ReadClock
	var now func() time.Time
	if fl.now == "" {
		clock = filter.NewReadClock()
		now = clock.Now
	} else {
		t, err := time.Parse(time.RFC3339Nano, fl.now)
		if err != nil {
			return nil, usageErr("--now %q: not an RFC3339 time: %v", fl.now, err)
		}
		now = func() time.Time { return t }
	}
	if fl.maxLines < 0 {
		return nil, usageErr("--maxlines %d: want a number of lines, 1 or more", fl.maxLines)
	}
	var opts []ini.Option
	ref := isFilterRef(filterArg)
	if ref {
		name, args, err := ini.ExtractOptions(filterArg)
		if err != nil {
			return nil, usageErr("filter %q: %v", filterArg, err)
		}
		filterArg, opts = name, args
	}
	for _, o := range fl.opts {
		name, value, ok := strings.Cut(o, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, usageErr("--opt %q: want NAME=VALUE", o)
		}
		opts = append(opts, ini.Option{Name: name, Value: value})
	}
	journal := fromJournal   // a journal's lines carry no dates (logtype = journal)
	for _, o := range opts { // the last logtype given wins
		if o.Name == "logtype" {
			journal = strings.TrimSpace(o.Value) == "journal"
		}
	}
	spec := config.FilterSpec{Name: filterArg, Options: opts, Backend: backendOf(fromJournal)}
	var failRegex string
	if !ref {
		// a failregex itself: no files, the default date templates
		spec, failRegex = config.FilterSpec{Name: cmdLineRegex}, filterArg
	}
	dir := filepath.Join(app.Root, "/etc/palisade")
	if fl.configDir != "" {
		dir = fl.configDir
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, usageErr("--config-dir %s: not a directory", dir)
		}
	}
	// the sums of fail2ban's stock files; without them (no dpkg) every
	// file is used as written. Read only when a filter file from disk is.
	sums := stock.Lazy(app.Root)
	// a test run over a file gives every answer: no backtracking budget
	bf, err := pipeline.BuildFilter(pipeline.FilterInput{
		Spec: spec, FailRegex: failRegex,
		Dirs:     []string{dir},
		Builtin:  filters.FS(),
		Location: loc, Now: now, Journal: journal, BacktrackBudget: -1,
		Stock: sums, AsWritten: fl.asWritten, IgnoreRegex: ignore, DatePattern: fl.datePattern, MaxLines: fl.maxLines,
		// each line's failures are written or counted before the next
		// line, and neither the summary nor --json shows matched lines
		ReuseResults: true, NoMatches: true,
	})
	if err != nil {
		return nil, usageErr("%v", err)
	}
	run := &regexRun{flt: bf.Filter, def: bf.Definition, loc: loc, now: now, clock: clock, journal: journal}
	if bf.Stock != nil {
		run.note = bf.Stock.String()
	}
	return run, nil
}

// backendOf is the backend a filter is read for: "systemd" makes its
// logtype journal, as for a jail reading the journal.
func backendOf(fromJournal bool) string {
	if fromJournal {
		return "systemd"
	}
	return "auto"
}

// parseJournalLog reads LOG systemd-journal, with a jail's systemd backend
// options in brackets (journalpath=DIR, journalfiles=FILES); ok is false
// for any other LOG, and, as for fail2ban-regex, for a file of that name.
func parseJournalLog(logArg string) (spec journal.Spec, ok bool, err error) {
	rest, ok := strings.CutPrefix(logArg, "systemd-journal")
	if !ok {
		return spec, false, nil
	}
	if _, err := os.Stat(logArg); err == nil {
		return spec, false, nil
	}
	b, err := source.ParseBackend("systemd" + rest)
	if err != nil {
		return spec, true, usageErr("log %s: %v", logArg, err)
	}
	for k, v := range b.Options {
		switch k {
		case "journalpath":
			spec.Directory = v
		case "journalfiles":
			spec.Files = strings.Fields(v)
		case "journalflags", "namespace": // accepted, as by a jail
		default:
			return spec, true, usageErr("log %s: unknown option %q (want journalpath, journalfiles)", logArg, k)
		}
	}
	return spec, true, nil
}

func runRegex(app *App, fl regexFlags, logArg, filterArg string, ignore []string) error {
	jspec, fromJournal, err := parseJournalLog(logArg)
	if err != nil {
		return err
	}
	if fl.journalMatch != "" && !fromJournal {
		return usageErr("--journalmatch applies to LOG systemd-journal only")
	}
	switch {
	case fl.json && fl.out != "":
		return usageErr("--json and --out: choose one")
	case (fl.json || fl.out != "") && (fl.printMatched || fl.printMissed || fl.printIgnored):
		return usageErr("--print-all-matched, --print-all-missed and --print-all-ignored list lines in the summary; --json and --out print failures only")
	}
	run, err := setupRegex(app, fl, filterArg, ignore, fromJournal)
	if err != nil {
		return err
	}
	if run.note != "" && fl.json {
		fmt.Fprintf(app.Stderr, "palisade: note: %s\n", run.note)
	}
	out := bufio.NewWriterSize(app.Stdout, 64<<10)
	st := newRegexStats(run)
	st.keep = [3]bool{fl.printMatched, fl.printMissed, fl.printIgnored}
	// handle matches one line, the n-th of the log, logged at at (zero:
	// its date is read from it, or it is --now's for journal lines).
	handle := func(line []byte, n int, at time.Time) {
		var res filter.Result
		switch {
		case !at.IsZero():
			res = run.flt.ProcessAt(string(line), at)
		case run.journal:
			res = run.flt.ProcessAt(string(line), run.now())
		default:
			res = run.flt.ProcessBytes(line)
		}
		if kind := st.add(res); st.keep[kind] {
			st.listed[kind] = append(st.listed[kind], string(line))
		}
		switch {
		case fl.json:
			for i := range res.Failures {
				writeFailureJSON(out, n, &res.Failures[i], run.loc)
			}
		case fl.out != "":
			for i := range res.Failures {
				writeFailureOut(out, fl.out, &res.Failures[i], line)
			}
		}
	}
	start := time.Now()
	if fromJournal {
		jspec.Match = fl.journalMatch
		if jspec.Match == "" {
			jspec.Match = run.def.JournalMatch
		}
		n := 0
		jst, err := journal.New(journal.Config{}).ReadAll(context.Background(), jspec, func(l source.Line) {
			n++
			handle([]byte(l.Text), n, l.Time)
		})
		for _, alt := range jst.RootOnly {
			fmt.Fprintf(app.Stderr, "palisade: note: journalmatch %q names no field a local user cannot forge: only root's entries are read for it, as a jail reads them\n", alt)
		}
		if err != nil {
			_ = out.Flush()
			return failErr(fmt.Errorf("reading the journal: %w", err))
		}
		st.tooLong, st.elapsed = jst.TooLong, time.Since(start)
		return finishRegex(app, fl, out, st)
	}
	var in io.Reader
	if logArg == "-" {
		in = app.Stdin
	} else {
		fh, err := os.Open(logArg)
		switch {
		case errors.Is(err, fs.ErrNotExist) && strings.ContainsAny(logArg, " \t"):
			// a log line itself, as fail2ban-regex takes it (a file
			// name without a space that does not exist stays an error)
			in = strings.NewReader(logArg)
			logArg = "the line given"
		case err != nil:
			return usageErr("log: %v", err)
		default:
			defer fh.Close()
			if st, err := fh.Stat(); err == nil && st.IsDir() {
				return usageErr("log %s: is a directory", logArg)
			}
			in = fh
		}
	}
	if run.clock != nil {
		in = run.clock.Reader(in)
	}
	sp := source.NewSplitter(source.MaxLineLen)
	lines := 0
	err = source.ReadLines(context.Background(), in, sp, func(line []byte) {
		lines++
		handle(line, lines+int(sp.Dropped()), time.Time{}) // the line's number in the file
	})
	st.tooLong = sp.Dropped()
	st.elapsed = time.Since(start)
	if err != nil {
		_ = out.Flush()
		return failErr(fmt.Errorf("reading %s: %w", logArg, err))
	}
	return finishRegex(app, fl, out, st)
}

// finishRegex writes the summary (or, after --json and --out, the count
// of lines skipped) and flushes the output.
func finishRegex(app *App, fl regexFlags, out *bufio.Writer, st *regexStats) error {
	if !fl.json && fl.out == "" {
		st.write(out)
	} else if st.tooLong > 0 {
		fmt.Fprintf(app.Stderr, "palisade: %d line(s) longer than %d bytes skipped\n", st.tooLong, source.MaxLineLen)
	}
	if err := out.Flush(); err != nil {
		return failErr(err)
	}
	return nil
}

// reserved keys of the JSON object; fields of these names are not repeated.
var reservedKeys = map[string]bool{"line": true, "host": true, "time": true, "users": true, "attempts": true, "regex": true}

// writeFailureJSON writes one failure as a JSON object line.
func writeFailureJSON(w *bufio.Writer, line int, fl *filter.Failure, loc *time.Location) {
	fields := fl.Fields()
	host := fl.ID
	if h, ok := fields["host"]; ok {
		host = h
	}
	w.WriteString(`{"line":`)
	w.WriteString(strconv.Itoa(line))
	w.WriteString(`,"host":`)
	writeJSONString(w, host)
	w.WriteString(`,"time":`)
	if fl.Time.IsZero() {
		w.WriteString("null")
	} else {
		writeJSONString(w, formatTime(fl.Time, loc))
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if !reservedKeys[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.WriteByte(',')
		writeJSONString(w, k)
		w.WriteByte(':')
		writeJSONString(w, fields[k])
	}
	if fl.Users != nil {
		w.WriteString(`,"users":[`)
		for i, u := range fl.Users {
			if i > 0 {
				w.WriteByte(',')
			}
			writeJSONString(w, u)
		}
		w.WriteByte(']')
	}
	w.WriteString(`,"attempts":`)
	w.WriteString(strconv.Itoa(fl.Attempts))
	w.WriteString(`,"regex":`)
	w.WriteString(strconv.Itoa(fl.Regex))
	w.WriteString("}\n")
}

// writeFailureOut writes what --out names of a failure, a line: a token
// (id, ip, msg, or a capture's name, "F-USER" or "user") or a template in
// which each <token> is replaced. line is the line that gave the failure.
func writeFailureOut(w *bufio.Writer, out string, fl *filter.Failure, line []byte) {
	if !strings.Contains(out, "<") {
		w.WriteString(failureToken(fl, out, line))
		w.WriteByte('\n')
		return
	}
	for rest := out; rest != ""; {
		i := strings.IndexByte(rest, '<')
		j := strings.IndexByte(rest[max(i, 0):], '>')
		if i < 0 || j < 0 {
			w.WriteString(rest)
			break
		}
		w.WriteString(rest[:i])
		w.WriteString(failureToken(fl, rest[i+1:i+j], line))
		rest = rest[i+j+1:]
	}
	w.WriteByte('\n')
}

// failureToken is one --out token of a failure ("" when it has none).
func failureToken(fl *filter.Failure, name string, line []byte) string {
	switch name {
	case "id":
		return fl.ID
	case "msg":
		return string(line)
	case "ip":
		if v, ok := fl.Field("ip"); ok {
			return v
		}
		if fl.Addr.IsValid() {
			return fl.Addr.String()
		}
		return ""
	}
	v, _ := fl.Field(strings.ToLower(strings.TrimPrefix(name, "F-")))
	return v
}

// formatTime renders t as local wall-clock time in loc, with microseconds
// when it has a fraction.
func formatTime(t time.Time, loc *time.Location) string {
	t = t.In(loc)
	if t.Nanosecond() != 0 {
		return t.Format("2006-01-02T15:04:05.000000")
	}
	return t.Format("2006-01-02T15:04:05")
}

func writeJSONString(w *bufio.Writer, s string) {
	b, err := json.Marshal(s)
	if err != nil { // cannot happen for a string
		w.WriteString(`""`)
		return
	}
	w.Write(b)
}

// regexStats is the summary of a run.
type regexStats struct {
	run                     *regexRun
	lines, matched, ignored int
	missed, failures        int
	failHits, ignHits       []int
	hosts                   map[string]*int // failures per host (at most maxTopHosts)
	hostsDropped            int
	tooLong                 uint64      // lines over source.MaxLineLen, not matched
	keep                    [3]bool     // list the lines of a kind (lineMatched...)
	listed                  [3][]string // those lines
	elapsed                 time.Duration
}

func newRegexStats(run *regexRun) *regexStats {
	return &regexStats{
		run:      run,
		failHits: make([]int, len(run.def.FailRegex)),
		ignHits:  make([]int, len(run.def.IgnoreRegex)),
		hosts:    map[string]*int{},
	}
}

// A line's kind in the summary, as fail2ban-regex counts it: "matched"
// when it gives a failure, "ignored" when an ignoreregex or a no-failure
// rule took it, else "missed".
const (
	lineMatched = iota
	lineMissed
	lineIgnored
)

// add counts one line's result and returns the line's kind.
func (s *regexStats) add(res filter.Result) int {
	s.lines++
	kind := lineIgnored
	switch {
	case len(res.Failures) > 0:
		s.matched++
		kind = lineMatched
	case res.Status == filter.Missed:
		s.missed++
		kind = lineMissed
	default:
		s.ignored++
	}
	if res.Regex >= 0 && res.Regex < len(s.failHits) && res.Status == filter.Matched {
		s.failHits[res.Regex]++
	}
	if res.Ignore >= 0 && res.Ignore < len(s.ignHits) {
		s.ignHits[res.Ignore]++
	}
	for i := range res.Failures {
		id := res.Failures[i].ID
		s.failures++
		switch n := s.hosts[id]; {
		case n != nil:
			*n++
		case len(s.hosts) < maxTopHosts:
			// a copy: the id may hold its whole line in memory
			s.hosts[strings.Clone(id)] = new(1)
		default:
			s.hostsDropped++
		}
	}
	return kind
}

func (s *regexStats) write(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("Filter: %s\n", s.run.def.Name)
	if s.run.note != "" {
		p("Note: %s\n", s.run.note)
	}
	p("\nFailregex: %d total\n", sum(s.failHits))
	for i, re := range s.run.def.FailRegex {
		p("  %3d) [%d] %s\n", i+1, s.failHits[i], re)
	}
	p("\nIgnoreregex: %d total\n", sum(s.ignHits))
	for i, re := range s.run.def.IgnoreRegex {
		p("  %3d) [%d] %s\n", i+1, s.ignHits[i], re)
	}
	type hc struct {
		h string
		n int
	}
	var top []hc
	for h, n := range s.hosts {
		top = append(top, hc{h, *n})
	}
	sort.Slice(top, func(a, b int) bool {
		if top[a].n != top[b].n {
			return top[a].n > top[b].n
		}
		return top[a].h < top[b].h
	})
	if len(top) > 10 {
		top = top[:10]
	}
	p("\nFailures: %d from %d hosts\n", s.failures, len(s.hosts))
	for _, t := range top {
		p("  %8d  %s\n", t.n, t.h)
	}
	if s.hostsDropped > 0 {
		p("  (%d failures from further hosts not counted)\n", s.hostsDropped)
	}
	rate := 0.0
	if s.elapsed > 0 {
		rate = float64(s.lines) / s.elapsed.Seconds()
	}
	p("\nLines: %d lines, %d ignored, %d matched, %d missed\n", s.lines, s.ignored, s.matched, s.missed)
	if s.tooLong > 0 {
		p("Too long: %d line(s) longer than %d bytes skipped (not matched)\n", s.tooLong, source.MaxLineLen)
	}
	if n := s.run.flt.Timeouts(); n > 0 {
		p("Regex timeouts: %d (counted as no match)\n", n)
	}
	p("[processed in %s: %.0f lines/s]\n", s.elapsed.Round(time.Millisecond), rate)
	for kind, title := range [3]string{"Matched", "Missed", "Ignored"} {
		if !s.keep[kind] {
			continue
		}
		p("\n%s lines: %d\n", title, len(s.listed[kind]))
		for _, l := range s.listed[kind] {
			p("  %s\n", l)
		}
	}
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}
