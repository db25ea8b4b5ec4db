package sshd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Effective is the configuration sshd reports with -T: keyword (lower
// case) to values, one entry per output line (Port, ListenAddress and
// similar keywords repeat).
type Effective map[string][]string

// Get returns the first value of keyword ("" when absent).
func (e Effective) Get(keyword string) string {
	v := e[strings.ToLower(keyword)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// ParseEffective parses "sshd -T" output.
func ParseEffective(out []byte) Effective {
	e := Effective{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if k == "" {
			continue
		}
		k = strings.ToLower(k)
		e[k] = append(e[k], strings.TrimSpace(v))
	}
	return e
}

// Daemon runs the sshd binary against one configuration tree.
//
// Under a root, sshd would read the tree with the host's eyes: an
// absolute Include, HostKey or symbolic link names a file outside the
// root, and a relative Include is taken against the host's /etc/ssh. So
// sshd reads a temporary copy instead, in which every Include names the
// files palisade's own parse read (inside the root, in the same order),
// and HostKey and HostCertificate their paths inside the root: sshd's
// answer and the audit's file:line tracing come from the same files.
// sshd's messages are shown with the copy's paths turned back into the
// real ones (the copy keeps every line number).
type Daemon struct {
	Runner sysexec.Runner
	// Binary is the sshd program (default "sshd", found on PATH).
	Binary string
	// Root is the --root prefix; Config the full path of the main file.
	Root   string
	Config string
}

// NewDaemon returns a Daemon for the main configuration under root.
func NewDaemon(r sysexec.Runner, root string) *Daemon {
	return &Daemon{Runner: r, Binary: "sshd", Root: root, Config: fsx.Path(root, DefaultConfig)}
}

func (d *Daemon) rooted() bool { return d.Root != "" && d.Root != "/" }

// hostKeyArgs are -h for each host key found under the root (sshd
// refuses to test a configuration without a host key, and its default
// keys are the host's).
func (d *Daemon) hostKeyArgs() []string {
	if !d.rooted() {
		return nil
	}
	var args []string
	keys, _ := filepath.Glob(fsx.Path(d.Root, "/etc/ssh/ssh_host_*_key"))
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-h", k)
	}
	return args
}

// SSHDError is sshd refusing to run on a configuration, in its own words.
type SSHDError struct {
	Cmd  string // "sshd -t -f /etc/ssh/sshd_config"
	Code int
	Text string // sshd's messages (its last lines), real paths
}

func (e *SSHDError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("%s failed (exit %d) without a message", e.Cmd, e.Code)
	}
	return fmt.Sprintf("%s failed (exit %d): %s", e.Cmd, e.Code, e.Text)
}

// privsepMissing is how sshd says its privilege separation directory is
// missing (the host never started sshd: its unit creates /run/sshd).
const privsepMissing = "Missing privilege separation directory: "

// run runs sshd in mode (-t or -T) with extra arguments and returns its
// result, or an *SSHDError with its messages. A missing privilege
// separation directory is created (0755, as sshd's unit does) and sshd
// run again: it is the directory sshd was built with, so under --root too
// it is the host's.
func (d *Daemon) run(ctx context.Context, mode string, extra ...string) (sysexec.Result, error) {
	main, back, cleanup, err := d.prepare()
	if err != nil {
		return sysexec.Result{}, err
	}
	defer cleanup()
	args := append(append([]string{mode, "-f", main}, d.hostKeyArgs()...), extra...)
	shown := strings.Join(append([]string{d.Binary, mode, "-f", d.Config}, extra...), " ")
	for attempt := 0; ; attempt++ {
		res, err := d.Runner.Run(ctx, sysexec.Cmd{Name: d.Binary, Args: args})
		var ee *sysexec.ExitError
		switch {
		case err == nil:
			return res, nil
		case !errors.As(err, &ee):
			// sshd did not run: say so with the command as shown, not
			// the runner's words about the temporary copy.
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
			return res, fmt.Errorf("run %s: %w", shown, err)
		}
		text := back.Replace(strings.TrimSpace(string(res.Stderr)))
		if text == "" {
			text = back.Replace(strings.TrimSpace(ee.Stderr))
		}
		if dir, ok := missingDir(text); ok && attempt == 0 {
			if mkErr := os.MkdirAll(dir, 0o755); mkErr == nil {
				continue
			}
		}
		return res, &SSHDError{Cmd: shown, Code: ee.ExitCode, Text: lastLines(text, 20, 2000)}
	}
}

// missingDir returns the privilege separation directory sshd says is
// missing.
func missingDir(text string) (string, bool) {
	i := strings.Index(text, privsepMissing)
	if i < 0 {
		return "", false
	}
	dir, _, _ := strings.Cut(text[i+len(privsepMissing):], "\n")
	dir = strings.TrimSpace(dir)
	if !filepath.IsAbs(dir) {
		return "", false
	}
	return filepath.Clean(dir), true
}

// lastLines keeps the last n lines of text, at most max bytes: sshd's
// error comes last, after any warnings.
func lastLines(text string, n, max int) string {
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, "\n")
	if len(out) > max {
		out = "..." + out[len(out)-max:]
	}
	return out
}

// prepare returns the main file sshd is to read, a replacer that turns
// the paths sshd will print back into the real ones, and a cleanup. On
// the real host (no root) that is the configuration itself.
func (d *Daemon) prepare() (string, *strings.Replacer, func(), error) {
	none := func() {}
	if !d.rooted() {
		return d.Config, strings.NewReplacer(), none, nil
	}
	cfg, err := Load(d.Root, d.Config)
	if err != nil {
		return "", nil, none, err
	}
	tmp, err := os.MkdirTemp("", "palisade-sshd-")
	if err != nil {
		return "", nil, none, fmt.Errorf("copy of the sshd configuration: %w", err)
	}
	cleanup := func() { os.RemoveAll(tmp) }
	copyOf := make(map[string]string, len(cfg.Order))
	var pairs []string
	for i, f := range cfg.Order {
		c := filepath.Join(tmp, fmt.Sprintf("%03d-%s", i, filepath.Base(f)))
		copyOf[f] = c
		pairs = append(pairs, c, f)
	}
	for _, f := range cfg.Order {
		if err := os.WriteFile(copyOf[f], cfg.rewrite(f, copyOf), 0o600); err != nil {
			cleanup()
			return "", nil, none, fmt.Errorf("copy of the sshd configuration: %w", err)
		}
	}
	return copyOf[d.Config], strings.NewReplacer(pairs...), cleanup, nil
}

// rewrite returns file's text for the temporary copy: each Include names
// the copies of the files it read, each HostKey and HostCertificate its
// path inside the root; every other line is kept, so line numbers stay.
func (c *Config) rewrite(file string, copyOf map[string]string) []byte {
	byLine := map[int]Directive{}
	for _, d := range c.Directives {
		if d.File == file {
			byLine[d.Line] = d
		}
	}
	var b strings.Builder
	for i, line := range fsx.SplitLines(c.Files[file]) {
		d, ok := byLine[i+1]
		switch {
		case ok && d.Key() == "include":
			var names []string
			for _, files := range d.Included {
				for _, f := range files {
					names = append(names, quoteArg(copyOf[f]))
				}
			}
			if len(names) == 0 {
				b.WriteString("# Include (no file)\n")
			} else {
				b.WriteString("Include " + strings.Join(names, " ") + "\n")
			}
		case ok && (d.Key() == "hostkey" || d.Key() == "hostcertificate") && len(d.Args) == 1 && filepath.IsAbs(d.Args[0]):
			b.WriteString(d.Keyword + " " + quoteArg(fsx.Path(c.Root, d.Args[0])) + "\n")
		default:
			b.WriteString(strings.TrimRight(line, "\r\n") + "\n")
		}
	}
	return []byte(b.String())
}

func quoteArg(s string) string { return `"` + s + `"` }

// Test runs "sshd -t": nil, or sshd's complaint (*SSHDError).
func (d *Daemon) Test(ctx context.Context) error {
	_, err := d.run(ctx, "-t")
	return err
}

// Conn describes a connection for "sshd -T -C".
type Conn struct {
	User, Host, Addr string
}

func (c Conn) spec() string {
	var parts []string
	if c.User != "" {
		parts = append(parts, "user="+c.User)
	}
	if c.Host != "" {
		parts = append(parts, "host="+c.Host)
	}
	if c.Addr != "" {
		parts = append(parts, "addr="+c.Addr)
	}
	return strings.Join(parts, ",")
}

// Effective runs "sshd -T", with -C for conn when it is not nil.
func (d *Daemon) Effective(ctx context.Context, conn *Conn) (Effective, error) {
	var extra []string
	if conn != nil {
		extra = []string{"-C", conn.spec()}
	}
	res, err := d.run(ctx, "-T", extra...)
	if err != nil {
		return nil, err
	}
	e := ParseEffective(res.Stdout)
	if len(e) == 0 {
		return nil, fmt.Errorf("sshd -T -f %s printed no configuration", d.Config)
	}
	return e, nil
}
